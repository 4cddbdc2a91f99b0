//! Hints that bring memory into the processor's cache before it is read. An audit and a
//! refresh visit thousands of facilities, each a few scattered heap blocks that have gone
//! cold since the last visit, so most of their time is spent waiting on memory one load at
//! a time (BENCHMARKS.md, the ninth pass). Asking for the facilities a few places ahead
//! lets those waits overlap the work on the current one. A hint changes no value: where
//! the processor has no such instruction these do nothing.

/// The cache line of every x86-64 processor.
pub const LINE_BYTES: usize = 64;

/// Asks for the lines holding the `len` bytes from `start`: from the line of the first
/// byte to the line of the last; none for no bytes (an empty vector's pointer is not an
/// address worth a page walk).
fn lines(start: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    if len > 0 {
        let skew = start.addr() % LINE_BYTES;
        let first_line = start.wrapping_sub(skew);
        for offset in (0..skew.saturating_add(len)).step_by(LINE_BYTES) {
            // SAFETY: `prefetcht0` is a hint: it never faults and never changes memory,
            // whatever the address (Intel SDM, PREFETCHh), and `wrapping_*` make no
            // claim about the pointers they return. SSE, which has it, is in every x86-64.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    first_line.wrapping_add(offset).cast(),
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, len);
}

/// Asks for `value` itself (not what it points to).
pub fn value<T>(value: &T) {
    lines(std::ptr::from_ref(value).cast(), size_of::<T>());
}

/// Asks for the first `most_lines` cache lines of `items`.
pub fn head<T>(items: &[T], most_lines: usize) {
    let bytes = most_lines.saturating_mul(LINE_BYTES);
    lines(items.as_ptr().cast(), size_of_val(items).min(bytes));
}

/// Asks for the last `most_lines` cache lines of `items` (of whole items).
pub fn tail<T>(items: &[T], most_lines: usize) {
    let bytes = most_lines.saturating_mul(LINE_BYTES);
    let keep = (bytes / size_of::<T>().max(1)).min(items.len());
    head(&items[items.len() - keep..], most_lines);
}

#[cfg(test)]
mod tests {
    // A hint has no effect to observe but that it is harmless: on empty slices, on
    // zero-sized items, at the very end of an allocation.
    #[test]
    fn hints_on_any_slice_read_nothing_out_of_bounds() {
        let bytes = vec![7u8; 1000];
        super::head(&bytes, 64);
        super::tail(&bytes, 64);
        super::tail(&bytes[..3], 1);
        super::head::<u64>(&[], 1);
        super::tail::<u64>(&[], 1);
        super::tail(&[(); 5], 1);
        super::value(&bytes);
        assert_eq!(bytes, vec![7u8; 1000]);
    }
}
