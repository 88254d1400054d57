//! Work split in two halves for a machine's second core: the first half
//! on the calling thread, the second on a scoped thread of its own.
//!
//! Invariants: `f` sees each item exactly once, in one or two contiguous
//! slices that together are `items` in order; a thread that cannot be spawned
//! leaves its half to the caller, so the work is done either way; a panic
//! in the second half is resumed on the caller.

/// `(f(first half), Some(f(second half)))`, the second run on a thread
/// named `name` — or `(f(items), None)` when there are fewer than `min`
/// items, where a thread would cost more than it saves.
pub fn in_halves<T: Sync, R: Send>(
    items: &[T],
    min: usize,
    name: &str,
    f: impl Fn(&[T]) -> R + Sync,
) -> (R, Option<R>) {
    if items.len() < min {
        return (f(items), None);
    }
    let (first, second) = items.split_at(items.len() / 2);
    std::thread::scope(|s| {
        let other = std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(s, || f(second));
        let mine = f(first);
        let theirs = match other {
            Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Err(_) => f(second), // no thread to be had: this one does it
        };
        (mine, Some(theirs))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_in_order_split_or_not() {
        let items: Vec<u32> = (0..1000).collect();
        for min in [1, 1000, 1001] {
            let (a, b) = in_halves(&items, min, "test-half", |p: &[u32]| p.to_vec());
            assert_eq!(b.is_none(), min > items.len(), "min {min}");
            assert_eq!([a, b.unwrap_or_default()].concat(), items, "min {min}");
        }
        let (a, b) = in_halves(&[] as &[u32], 0, "test-half", |p: &[u32]| p.len());
        assert_eq!((a, b), (0, Some(0)));
    }
}
