//! The GPU path of the benchmark: CUDA events around each launch, input buffers rotated so the
//! L2 cache (50 MB on an H100) does not hold the next iteration's logits.

use super::{summarise, BenchCase, BenchKernels, BenchResult};
use batchsample::cpu::SampleOptions;
use batchsample::dtype::{Dtype, Logit};
use batchsample::error::Result;
use batchsample::gpu::{
    DeviceDrafts, DeviceProcessingBuf, GpuOutputs, GpuSampler, LogitRows, ParamFields,
    ProcessingWorkspace, RowParams, SampleOutputs, VerifyBuffers, Workspace,
};
use batchsample::params::{BatchFilters, SamplingParams};
use batchsample::processing::{LogprobsMode, ProcessingBuf};
use batchsample::verify::{uniform_offsets, VerifyOptions};
use cudarc::driver::{sys, CudaSlice, CudaStream, CudaView, DeviceRepr};
use half::{bf16, f16};
use std::cell::RefCell;
use std::sync::Arc;

/// Device bandwidth in GB/s from a 1 GiB device-to-device copy, counting bytes read plus written
/// (median of 10 after 2 warm-ups).
pub fn measure_device_bandwidth(gpu: &GpuSampler) -> Result<f64> {
    let stream = gpu.stream();
    let n = 1usize << 28; // 2^28 u32 = 1 GiB
    let src: CudaSlice<u32> = stream.alloc_zeros(n)?;
    let mut dst: CudaSlice<u32> = stream.alloc_zeros(n)?;
    let ctx = gpu.context();
    let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
    let mut times = Vec::new();
    for i in 0..12 {
        let (a, b) = (ctx.new_event(timing)?, ctx.new_event(timing)?);
        a.record(stream)?;
        stream.memcpy_dtod(&src, &mut dst)?;
        b.record(stream)?;
        let ms = a.elapsed_ms(&b)? as f64;
        if i >= 2 {
            times.push(ms);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(2.0 * (n * 4) as f64 / (times[times.len() / 2] * 1e-3) / 1e9)
}

/// How GPU times are taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GpuTiming {
    /// CUDA events around each launch: the latency of one sampling call, launch included.
    #[default]
    Events,
    /// A CUDA graph holding one launch per rotated input buffer, replayed; each sample is the
    /// replay's time over its launches. What a serving loop that captures its decode step sees:
    /// no host launch overhead, back-to-back kernels.
    Graph,
}

fn time_gpu<T: Logit + DeviceRepr>(
    gpu: &GpuSampler,
    host: &[T],
    case: BenchCase,
    iterations: usize,
    bandwidth_gbps: f64,
    mode: GpuTiming,
) -> Result<BenchResult> {
    let stream = gpu.stream();
    let bytes = case.logit_bytes().max(1);
    // Enough copies that one round of them overflows a 50-60 MB L2 twice over.
    let copies = (128usize << 20).div_ceil(bytes).clamp(1, 8);
    let buffers: Vec<CudaSlice<T>> = (0..copies)
        .map(|_| stream.clone_htod(host))
        .collect::<std::result::Result<_, _>>()?;
    let host_params = super::mode_params(case.mode, case.batch, 0);
    let verify = match case.mode {
        super::BenchMode::Verify => Some(VerifyInputs::upload(gpu, host, case)?),
        _ => None,
    };
    let filters = match case.kernels {
        BenchKernels::Auto | BenchKernels::Fields => BatchFilters::of(&host_params, case.vocab),
        BenchKernels::General => BatchFilters::Any,
    };
    let params = stream.clone_htod(&host_params)?;
    let fields = FieldArrays::upload(stream, &host_params)?;
    let mut out = gpu.alloc_outputs()?;
    let opts = SampleOptions {
        method: case.method,
        top_n: 0,
        numerics: case.numerics,
    };
    let processing =
        super::processing::processing_inputs(case.processing, case.batch, case.vocab, 1)
            .map(|buf| DeviceInputs::upload(gpu, &buf, &case))
            .transpose()?;
    // One launch on `logits`: packed parameter rows, or (`fields`) one array per field; with
    // the case's processing when it has some (the general kernels, packed rows).
    let launch = |logits: &CudaSlice<T>, out: &mut GpuOutputs| -> Result<()> {
        if let Some(v) = &verify {
            return v.launch(gpu, logits, &params, case);
        }
        if let Some(inputs) = &processing {
            let view = logits.as_view();
            let params_view = params.as_view();
            let (mut views, workspace) = out.views(0);
            return inputs.launch(
                gpu,
                LogitRows::dense(&view, case.vocab)?,
                RowParams::Packed(&params_view),
                &opts,
                &mut views,
                workspace,
            );
        }
        if case.kernels != BenchKernels::Fields {
            return gpu.sample_with(
                &logits.as_view(),
                case.vocab,
                &params.as_view(),
                filters,
                &opts,
                out,
            );
        }
        let view = logits.as_view();
        let (t, k, p, m, seed, step) = fields.views();
        let (mut views, workspace) = out.views(0);
        gpu.sample_rows_on(
            stream,
            LogitRows::dense(&view, case.vocab)?,
            RowParams::Fields(ParamFields {
                temperature: Some(&t),
                top_k: Some(&k),
                top_p: Some(&p),
                min_p: Some(&m),
                seed: Some(&seed),
                step: Some(&step),
                scalars: SamplingParams::default(),
            }),
            filters,
            &opts,
            &mut views,
            workspace,
        )
    };
    let ctx = gpu.context();
    let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
    for i in 0..3 {
        launch(&buffers[i % copies], &mut out)?;
    }
    let events: Vec<_> = (0..2 * iterations)
        .map(|_| ctx.new_event(timing))
        .collect::<std::result::Result<_, _>>()?;
    if mode == GpuTiming::Graph {
        stream.synchronize()?;
        stream.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)?;
        for b in &buffers {
            launch(b, &mut out)?;
        }
        let graph = stream
            .end_capture(
                sys::CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH,
            )?
            .ok_or_else(|| {
                batchsample::SampleError::Capacity("CUDA graph capture was empty".into())
            })?;
        graph.launch()?; // warm-up
        for i in 0..iterations {
            events[2 * i].record(stream)?;
            graph.launch()?;
            events[2 * i + 1].record(stream)?;
        }
        stream.synchronize()?;
        let times = (0..iterations)
            .map(|i| Ok(events[2 * i].elapsed_ms(&events[2 * i + 1])? as f64 * 1e3 / copies as f64))
            .collect::<Result<Vec<f64>>>()?;
        let mut result = summarise(case, "gpu", times, bandwidth_gbps);
        result.timing = "graph";
        return Ok(result);
    }
    for i in 0..iterations {
        events[2 * i].record(stream)?;
        launch(&buffers[i % copies], &mut out)?;
        events[2 * i + 1].record(stream)?;
    }
    stream.synchronize()?;
    let times = (0..iterations)
        .map(|i| Ok(events[2 * i].elapsed_ms(&events[2 * i + 1])? as f64 * 1e3))
        .collect::<Result<Vec<f64>>>()?;
    Ok(summarise(case, "gpu", times, bandwidth_gbps))
}

/// A verification case's drafts on the device and the buffers its launches share.
struct VerifyInputs {
    offsets: CudaSlice<u32>,
    tokens: CudaSlice<u32>,
    probs: Option<CudaSlice<f32>>,
    buffers: RefCell<VerifyBuffers>,
    workspace: RefCell<Workspace>,
}

impl VerifyInputs {
    fn upload<T: Logit>(gpu: &GpuSampler, host: &[T], case: BenchCase) -> Result<Self> {
        let widened: Vec<f32> = host.iter().map(|x| x.to_f32()).collect();
        let mut tokens = super::verify_drafts(&widened, case.vocab, case.batch, case.drafts);
        tokens.push(0); // never an empty device buffer
        let stream = gpu.stream();
        let probs = match case.dense_drafts && case.drafts > 0 {
            true => Some(stream.clone_htod(&super::draft_distributions(
                &widened,
                case.vocab,
                case.batch,
                case.drafts,
            ))?),
            false => None,
        };
        Ok(VerifyInputs {
            offsets: stream.clone_htod(&uniform_offsets(case.batch, case.drafts))?,
            tokens: stream.clone_htod(&tokens)?,
            probs,
            buffers: RefCell::new(gpu.alloc_verify_buffers(
                case.batch,
                case.rows(),
                case.drafts,
            )?),
            workspace: RefCell::new(gpu.alloc_workspace(case.rows())?),
        })
    }

    fn launch<T: Logit + DeviceRepr>(
        &self,
        gpu: &GpuSampler,
        logits: &CudaSlice<T>,
        params: &CudaSlice<SamplingParams>,
        case: BenchCase,
    ) -> Result<()> {
        let view = logits.as_view();
        let (offsets, tokens, params) = (
            self.offsets.as_view(),
            self.tokens.as_view(),
            params.as_view(),
        );
        let probs = self.probs.as_ref().map(|q| q.as_view());
        let mut buffers = self.buffers.borrow_mut();
        let (mut out, scratch) = buffers.views();
        gpu.verify_on(
            gpu.stream(),
            LogitRows::dense(&view, case.vocab)?,
            DeviceDrafts {
                offsets: &offsets,
                tokens: &tokens,
                probs: probs.as_ref(),
            },
            RowParams::Packed(&params),
            None,
            &VerifyOptions {
                method: case.method,
                numerics: case.numerics,
            },
            &mut out,
            &mut self.workspace.borrow_mut(),
            scratch,
        )
    }
}

/// A case's processing inputs on the device, the processing workspace its launches share, and
/// the logprobs they report.
struct DeviceInputs {
    inputs: DeviceProcessingBuf,
    workspace: RefCell<ProcessingWorkspace>,
    logprobs: LogprobsMode,
}

impl DeviceInputs {
    fn upload(gpu: &GpuSampler, buf: &ProcessingBuf, case: &BenchCase) -> Result<Self> {
        let capacity = buf.view().edit_table_capacity(case.batch);
        Ok(DeviceInputs {
            inputs: DeviceProcessingBuf::upload(gpu.stream(), &buf.view())?,
            workspace: RefCell::new(
                gpu.alloc_processing_workspace(case.batch, case.vocab, capacity)?,
            ),
            logprobs: case.processing.logprobs(),
        })
    }

    fn launch<T: Logit + DeviceRepr>(
        &self,
        gpu: &GpuSampler,
        logits: LogitRows<'_, T>,
        params: RowParams<'_>,
        opts: &SampleOptions,
        out: &mut SampleOutputs<'_>,
        workspace: &mut batchsample::gpu::Workspace,
    ) -> Result<()> {
        self.inputs.with_view(|device| {
            gpu.sample_processed_on(
                gpu.stream(),
                logits,
                params,
                device,
                self.logprobs,
                opts,
                out,
                workspace,
                &mut self.workspace.borrow_mut(),
            )
        })
    }
}

/// The parameters of a batch as one device array per field (the `fields` kernels case).
struct FieldArrays {
    temperature: CudaSlice<f32>,
    top_k: CudaSlice<u32>,
    top_p: CudaSlice<f32>,
    min_p: CudaSlice<f32>,
    seed: CudaSlice<u64>,
    step: CudaSlice<u64>,
}

type FieldViews<'a> = (
    CudaView<'a, f32>,
    CudaView<'a, u32>,
    CudaView<'a, f32>,
    CudaView<'a, f32>,
    CudaView<'a, u64>,
    CudaView<'a, u64>,
);

impl FieldArrays {
    fn upload(stream: &Arc<CudaStream>, rows: &[SamplingParams]) -> Result<Self> {
        let f32s = |f: fn(&SamplingParams) -> f32| rows.iter().map(f).collect::<Vec<f32>>();
        let u64s = |f: fn(&SamplingParams) -> u64| rows.iter().map(f).collect::<Vec<u64>>();
        Ok(FieldArrays {
            temperature: stream.clone_htod(&f32s(|p| p.temperature))?,
            top_k: stream.clone_htod(&rows.iter().map(|p| p.top_k).collect::<Vec<u32>>())?,
            top_p: stream.clone_htod(&f32s(|p| p.top_p))?,
            min_p: stream.clone_htod(&f32s(|p| p.min_p))?,
            seed: stream.clone_htod(&u64s(|p| p.seed))?,
            step: stream.clone_htod(&u64s(|p| p.step))?,
        })
    }

    fn views(&self) -> FieldViews<'_> {
        (
            self.temperature.as_view(),
            self.top_k.as_view(),
            self.top_p.as_view(),
            self.min_p.as_view(),
            self.seed.as_view(),
            self.step.as_view(),
        )
    }
}

/// Times the GPU sampler on one case. The sampler's `max_batch` must cover `case.batch`.
pub fn bench_gpu(
    gpu: &GpuSampler,
    case: BenchCase,
    iterations: usize,
    bandwidth_gbps: f64,
    mode: GpuTiming,
) -> Result<BenchResult> {
    let logits = super::shaped_logits(case.rows(), case.vocab, 1, case.shape);
    match case.dtype {
        Dtype::F32 => time_gpu(gpu, &logits, case, iterations, bandwidth_gbps, mode),
        Dtype::F16 => {
            let v: Vec<f16> = logits.iter().map(|&x| f16::from_f32(x)).collect();
            time_gpu(gpu, &v, case, iterations, bandwidth_gbps, mode)
        }
        Dtype::Bf16 => {
            let v: Vec<bf16> = logits.iter().map(|&x| bf16::from_f32(x)).collect();
            time_gpu(gpu, &v, case, iterations, bandwidth_gbps, mode)
        }
    }
}
