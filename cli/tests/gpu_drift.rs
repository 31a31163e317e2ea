//! Experiment 2 on a real GPU: the batch-invariant projection kernel gives the same bits for a
//! row at every batch size (1..=64) and position and equals its CPU twin bit for bit; cuBLAS runs,
//! reruns batch 1 bit for bit, and reports. Without a GPU every test prints a `SKIP:` line and
//! passes; `scripts/gpu-check` runs them where there is one (with libcublas on the loader path).

use batchsample::{Dtype, SampleError};
use batchsample_cli::drift::batch_size::gpu::{DeviceElement, GpuBackendKind, GpuDevice};
use batchsample_cli::drift::batch_size::inputs::{self, ProjectionInputs, SyntheticSpec};
use batchsample_cli::drift::batch_size::{self, Config, Position};

/// The device, or `None` after printing why the test is skipped.
fn device() -> Option<GpuDevice> {
    match GpuDevice::open(0) {
        Ok(d) => Some(d),
        Err(SampleError::NoDevice(why)) => {
            println!("SKIP: no GPU ({why})");
            None
        }
        Err(e) => panic!("a GPU is present but the projection kernels failed to load: {e}"),
    }
}

fn synthetic(rows: usize, d: usize, vocab: usize, dtype: Dtype, seed: u64) -> ProjectionInputs {
    inputs::synthetic(&SyntheticSpec {
        rows,
        d,
        vocab,
        dtype,
        near_ties: 0.5,
        seed,
    })
    .unwrap()
}

fn positions() -> Vec<Position> {
    vec![Position::First, Position::Middle, Position::Last]
}

fn invariant_sweep<T: DeviceElement>(dev: &GpuDevice, inputs: &ProjectionInputs) {
    let config = Config {
        batches: (1..=64).collect(),
        positions: positions(),
        iterations: 0,
    };
    let reference = batch_size::reference(inputs);
    let mut proj = dev.upload::<T>(inputs, config.max_batch()).unwrap();
    let mut backend = proj.backend(GpuBackendKind::Invariant).unwrap();
    let m = batch_size::measure(&mut backend, inputs.vocab, &reference, &config).unwrap();
    let compared: usize = m.report.batches.iter().map(|s| s.rows_compared).sum();
    for st in &m.report.batches {
        assert_eq!(
            (st.logits_differing, st.greedy_flips),
            (0, 0),
            "{:?} d {} vocab {}: batch {} differs from batch 1 ({st:?})",
            inputs.dtype,
            inputs.d,
            inputs.vocab,
            st.batch
        );
    }
    let twin = batch_size::twin_check(inputs, "invariant", &m.batch_1, inputs.rows);
    println!(
        "invariant {:?} d {} vocab {}: {compared} rows at batch sizes 1..=64 and 3 positions \
         identical to batch 1; CPU twin: {} of {} logits differ",
        inputs.dtype, inputs.d, inputs.vocab, twin.logits_differing, twin.logits
    );
    assert_eq!(twin.rows, inputs.rows);
    assert_eq!(twin.logits_differing, 0, "{twin:?}");
}

#[test]
fn gpu_invariant_projection_never_drifts_and_equals_its_twin() {
    let Some(dev) = device() else { return };
    // 16-byte loads (d a multiple of 8) and element loads (ragged d), ragged vocab tiles.
    for (i, &(dtype, d, vocab)) in [
        (Dtype::F32, 4096, 5003),
        (Dtype::Bf16, 4096, 5003),
        (Dtype::F32, 1029, 3001),
        (Dtype::Bf16, 1000, 2049),
        (Dtype::F16, 520, 777),
    ]
    .iter()
    .enumerate()
    {
        let inputs = synthetic(8, d, vocab, dtype, 0x6d1f + i as u64);
        match dtype {
            Dtype::F32 => invariant_sweep::<f32>(&dev, &inputs),
            Dtype::F16 => invariant_sweep::<half::f16>(&dev, &inputs),
            Dtype::Bf16 => invariant_sweep::<half::bf16>(&dev, &inputs),
        }
    }
}

fn cublas_sweep<T: DeviceElement>(dev: &GpuDevice, inputs: &ProjectionInputs) {
    let config = Config {
        batches: vec![1, 2, 3, 4, 8, 16, 32, 64, 128],
        positions: positions(),
        iterations: 5,
    };
    let reference = batch_size::reference(inputs);
    let mut proj = dev.upload::<T>(inputs, config.max_batch()).unwrap();
    let mut reports = Vec::new();
    for kind in [GpuBackendKind::Cublas, GpuBackendKind::Invariant] {
        let mut backend = proj.backend(kind).unwrap();
        let m = batch_size::measure(&mut backend, inputs.vocab, &reference, &config).unwrap();
        reports.push(m.report);
    }
    let rep = batch_size::assemble(inputs, &dev.describe(), &config, reference, reports, None);
    print!("{}", batch_size::summary(&rep));
    let (cublas, invariant) = (&rep.backends[0], &rep.backends[1]);
    // The same shape twice gives the same bits (cuBLAS's documented run-to-run determinism).
    assert_eq!(cublas.batches[0].batch, 1);
    assert_eq!(
        cublas.batches[0].logits_differing, 0,
        "cuBLAS batch 1 rerun"
    );
    assert!(invariant.batches.iter().all(|s| s.logits_differing == 0));
    for b in [cublas, invariant] {
        assert!(b.batches.iter().all(|s| s.time_ms.is_some_and(|t| t > 0.0)));
        assert_eq!(b.batches.len(), config.batches.len());
    }
    assert_eq!(rep.cost.len(), config.batches.len());
}

#[test]
fn gpu_cublas_runs_and_reports() {
    let Some(mut dev) = device() else { return };
    dev.enable_cublas().unwrap_or_else(|e| {
        panic!(
            "a GPU is present but cuBLAS is not usable: {e} (scripts/gpu-check puts \
             libcublas.so.13 on LD_LIBRARY_PATH)"
        )
    });
    let f32_inputs = synthetic(8, 4096, 8192, Dtype::F32, 0xcb1a5);
    cublas_sweep::<f32>(&dev, &f32_inputs);
    let bf16_inputs = synthetic(8, 4096, 8192, Dtype::Bf16, 0xcb1a5);
    cublas_sweep::<half::bf16>(&dev, &bf16_inputs);
}
