//! The budget of answers held in memory (PROTOCOL §10: "never holds more than a bounded
//! amount of memory for clients that do not read their answers").
//!
//! An HTTP/1.1 connection holds at most one answer at a time: hyper reads the next
//! pipelined request only once the previous answer has gone to the kernel. A client that
//! pipelines requests and never reads therefore pins exactly one answer, and the server's
//! memory grows with the number of such clients times the size of their answers. Two
//! bounds hold it: every page of a list is capped by bytes (`limits::MAX_PAGE_BYTES`),
//! and every answer reserves its bytes from one shared budget for as long as it is in
//! memory, from the moment its handler returns until hyper has written its last byte to
//! the socket (the bytes carry the reservation, and hyper drops them once written). An
//! answer that does not fit is replaced by a 503 with `Retry-After`, unless it must go
//! out whatever the load (`conn::must_answer`: the probes', and a submission's, which
//! says what was written).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::{Body, Bytes};

use crate::limits::SMALL_ANSWER_BYTES;

/// Bytes of answers in memory, for all connections together.
#[derive(Debug)]
pub struct AnswerBudget {
    capacity: usize,
    used: AtomicUsize,
}

impl AnswerBudget {
    pub fn new(capacity: usize) -> Arc<AnswerBudget> {
        Arc::new(AnswerBudget {
            capacity,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes still free.
    pub fn available(&self) -> usize {
        self.capacity
            .saturating_sub(self.used.load(Ordering::Acquire))
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Reserves `bytes` if they fit. An answer of at most `SMALL_ANSWER_BYTES` is always
    /// admitted (and counted): refusing it would send no fewer bytes, and since a
    /// connection holds one answer at a time, such answers are bounded by the connection
    /// cap.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        if bytes <= SMALL_ANSWER_BYTES {
            return Some(self.reserve_anyway(bytes));
        }
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|&total| total <= self.capacity)
            })
            .ok()?;
        Some(Reservation {
            budget: self.clone(),
            bytes,
        })
    }

    /// Counts `bytes` even beyond the capacity, for an answer that must go out (see
    /// `conn::must_answer`): the memory is in use all the same, and others must see it.
    pub fn reserve_anyway(self: &Arc<Self>, bytes: usize) -> Reservation {
        self.used.fetch_add(bytes, Ordering::AcqRel);
        Reservation {
            budget: self.clone(),
            bytes,
        }
    }
}

/// Bytes of the budget held until this is dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<AnswerBudget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// An answer's bytes with what must live exactly as long as they do: their reservation,
/// and `guard` (the connection's note that its answer is out, see `conn`).
struct Owned<G: Send + 'static> {
    bytes: Bytes,
    _reservation: Reservation,
    _guard: G,
}

impl<G: Send + 'static> AsRef<[u8]> for Owned<G> {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A body of `bytes` whose reservation and `guard` are released when the last copy of
/// the bytes is dropped: when hyper has written them, or gives up on the connection.
pub fn hold<G: Send + 'static>(bytes: Bytes, reservation: Reservation, guard: G) -> Body {
    Body::from(Bytes::from_owner(Owned {
        bytes,
        _reservation: reservation,
        _guard: guard,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_the_budget_and_free_it_when_dropped() {
        let budget = AnswerBudget::new(10 * SMALL_ANSWER_BYTES);
        let a = budget.reserve(6 * SMALL_ANSWER_BYTES).expect("fits");
        assert!(budget.reserve(5 * SMALL_ANSWER_BYTES).is_none(), "over");
        let b = budget
            .reserve(4 * SMALL_ANSWER_BYTES)
            .expect("fits exactly");
        assert_eq!(budget.available(), 0);
        // A small answer passes even now, and is counted; so does one that must.
        let small = budget.reserve(SMALL_ANSWER_BYTES).expect("small");
        let must = budget.reserve_anyway(3 * SMALL_ANSWER_BYTES);
        assert_eq!(budget.used(), 14 * SMALL_ANSWER_BYTES);
        drop((a, small, must));
        assert_eq!(budget.available(), 6 * SMALL_ANSWER_BYTES);
        let body = hold(Bytes::from(vec![7u8; 3]), b, ());
        drop(body);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn held_bytes_keep_their_reservation_until_every_copy_is_gone() {
        let budget = AnswerBudget::new(10 * SMALL_ANSWER_BYTES);
        let bytes = Bytes::from(vec![1u8; 2 * SMALL_ANSWER_BYTES]);
        let r = budget.reserve(bytes.len()).expect("fits");
        let owned = Bytes::from_owner(Owned {
            bytes,
            _reservation: r,
            _guard: (),
        });
        let tail = owned.slice(SMALL_ANSWER_BYTES..);
        drop(owned);
        assert_eq!(
            budget.used(),
            2 * SMALL_ANSWER_BYTES,
            "a slice is still out"
        );
        drop(tail);
        assert_eq!(budget.used(), 0);
    }
}
