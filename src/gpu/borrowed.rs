//! Device memory that another library owns (a PyTorch tensor, an engine's buffer), seen as a
//! cudarc slice for one launch without taking it over: the sampler's launches take
//! `CudaView`s, and cudarc builds those only from a `CudaSlice`, which frees its memory when
//! dropped. [`BorrowedSlice`] hands the pointer back instead.

use super::GpuSampler;
use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut};
use std::sync::Arc;

/// `len` elements of `T` at a device address this crate does not own. Dropping it leaves the
/// memory alone.
pub struct BorrowedSlice<T> {
    // Always `Some` until dropped: `leak` consumes the slice.
    slice: Option<CudaSlice<T>>,
}

impl<T> BorrowedSlice<T> {
    pub fn len(&self) -> usize {
        self.slice.as_ref().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn view(&self) -> CudaView<'_, T> {
        self.slice.as_ref().expect("live until dropped").as_view()
    }

    pub fn view_mut(&mut self) -> CudaViewMut<'_, T> {
        self.slice
            .as_mut()
            .expect("live until dropped")
            .as_view_mut()
    }
}

impl<T> Drop for BorrowedSlice<T> {
    fn drop(&mut self) {
        if let Some(slice) = self.slice.take() {
            // The owner frees it, not us.
            slice.leak();
        }
    }
}

impl GpuSampler {
    /// Borrows `len` elements of `T` at `ptr` for launches on `stream`
    /// ([`GpuSampler::borrow_stream`] for a stream another library owns).
    ///
    /// # Safety
    /// `ptr` is an allocation of this sampler's context holding at least `len` valid `T`s (any
    /// bits are valid for the element types the sampler takes), and it outlives the returned
    /// value and every launch that uses it; the caller orders its owner's work on it with those
    /// launches (same stream, or events).
    pub unsafe fn borrow_slice<T>(
        &self,
        stream: &Arc<CudaStream>,
        ptr: CUdeviceptr,
        len: usize,
    ) -> BorrowedSlice<T> {
        // The sampler's context tracks no events (`GpuSampler::new`), so the slice records none
        // and its `leak` waits for none.
        BorrowedSlice {
            slice: Some(stream.upgrade_device_ptr(ptr, len)),
        }
    }
}
