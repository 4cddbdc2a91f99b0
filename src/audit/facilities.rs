//! The facilities a snapshot knows, in id order, with their positions by id: an audit
//! walks them in the order its findings are listed, and a month of reports is put in
//! place on every core, each taking a contiguous range of facilities. Pure memory, no
//! I/O.
//!
//! Each facility's facts sit behind an `Arc`: a newer snapshot starts as a copy of the
//! older one that shares every facility, and copies only those its changes touch
//! (`Arc::make_mut`), so readers of the older one are never disturbed. What a copy of a
//! facility copies is small (`FacilityFacts`): its records and settled reports stay
//! shared.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::FACILITIES_PER_THREAD;
use super::facts::FacilityFacts;
use crate::dates::Month;
use crate::domain::figures::Figures;
use crate::domain::rules::Touch;
use crate::ledger::Change;

#[derive(Clone, Debug, Default)]
pub struct Facilities {
    /// By id, each id once.
    all: Vec<Arc<FacilityFacts>>,
    /// Where each id is in `all`; shared by copies until a facility is added.
    position: Arc<HashMap<String, usize>>,
}

impl Facilities {
    pub fn get(&self, id: &str) -> Option<&FacilityFacts> {
        self.position.get(id).map(|&i| &*self.all[i])
    }

    /// Where the facility is in `iter`'s order.
    pub(super) fn position(&self, id: &str) -> Option<usize> {
        self.position.get(id).copied()
    }

    /// Asks for the memory an audit of the facilities after the `i`th will read, in
    /// three steps so that each step's addresses are in cache by the time it reads
    /// them: the facts' block six places ahead, the records' block four ahead, what
    /// they point to two ahead. A facility's rules take a few microseconds, about the
    /// time a step's loads take to come from memory; the audit alone went from 21–29 to
    /// 12–17 ms on the benchmarks' world (BENCHMARKS.md, ninth pass).
    pub(super) fn prefetch_for_audit(&self, i: usize) {
        if let Some(f) = self.all.get(i.saturating_add(6)) {
            crate::prefetch::value(&**f);
        }
        if let Some(f) = self.all.get(i.saturating_add(4)) {
            f.prefetch_records();
        }
        if let Some(f) = self.all.get(i.saturating_add(2)) {
            f.prefetch_read_by_audit();
        }
    }

    /// Every facility, by id.
    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = &FacilityFacts> + ExactSizeIterator + Clone {
        self.all.iter().map(|f| &**f)
    }

    /// Adds facilities, each replacing the one with its id if there is one.
    pub(super) fn insert(&mut self, facts: Vec<FacilityFacts>) {
        let mut added = false;
        for f in facts {
            let f = Arc::new(f);
            match self.position.get(f.id()) {
                Some(&i) => self.all[i] = f,
                None => {
                    Arc::make_mut(&mut self.position).insert(f.id().to_string(), self.all.len());
                    self.all.push(f);
                    added = true;
                }
            }
        }
        if added {
            // Stable: a few new facilities after thousands in order merge in one pass.
            self.all.sort_by(|a, b| a.id().cmp(b.id()));
            let position = Arc::make_mut(&mut self.position);
            for (i, f) in self.all.iter().enumerate() {
                if let Some(at) = position.get_mut(f.id()) {
                    *at = i;
                }
            }
        }
        debug_assert!(
            self.all.windows(2).all(|w| w[0].id() < w[1].id()),
            "facilities by id, each once"
        );
    }

    /// Puts the reports among `changes` in place; returns the facilities with reports
    /// that are not here. Each report lands in a different facility's memory, so the
    /// work is mostly waiting on memory, and every core waits beside the others: each
    /// finds the facilities of a share of the reports and sorts them by the core that
    /// will put them in place, then each puts in place the reports of a contiguous
    /// range of facilities, share after share, so in ledger order.
    pub(super) fn put_reports<Id: Borrow<str> + Sync>(
        &mut self,
        changes: &[Change<Id>],
    ) -> BTreeSet<String> {
        let shards = crate::parallel::threads_for(self.all.len(), FACILITIES_PER_THREAD);
        let per_shard = self.all.len().div_ceil(shards).max(1);
        // (shard, position in it) of a facility; `per_shard` is at least 1.
        let place = |at: usize| (at.div_euclid(per_shard), at.rem_euclid(per_shard));
        let shares =
            crate::parallel::map(changes.chunks(REPORTS_PER_THREAD).collect(), 1, |share| {
                let found: Vec<Found> = share.iter().map(|c| self.find(c)).collect();
                // Sized exactly, as the first load puts a million reports in place.
                let mut sizes = vec![0usize; shards];
                for found in &found {
                    if let Found::At(at) = found {
                        let size = &mut sizes[place(*at).0];
                        *size = size.saturating_add(1);
                    }
                }
                let mut work: Vec<Vec<(usize, Month, Figures, u64)>> =
                    sizes.into_iter().map(Vec::with_capacity).collect();
                let mut unseen = Vec::new();
                for (found, change) in found.into_iter().zip(share) {
                    match (found, &change.touch) {
                        (Found::At(at), Touch::Report(report)) => {
                            let (shard, position) = place(at);
                            work[shard].push((
                                position,
                                report.period,
                                report.figures,
                                change.index,
                            ));
                        }
                        (Found::Unseen, Touch::Report(report)) => {
                            unseen.push(report.facility_id.borrow().to_string());
                        }
                        _ => {}
                    }
                }
                (work, unseen)
            });
        let mut work: Vec<Vec<_>> = (0..shards)
            .map(|_| Vec::with_capacity(shares.len()))
            .collect();
        let mut unseen = BTreeSet::new();
        for (by_shard, ids) in shares {
            for (shard, reports) in work.iter_mut().zip(by_shard) {
                shard.push(reports);
            }
            unseen.extend(ids);
        }
        let ranges: Vec<_> = self.all.chunks_mut(per_shard).zip(work).collect();
        crate::parallel::map(ranges, 1, |(facilities, shares)| {
            // Each report's facility asked for eight reports ahead, and the series it
            // goes to four ahead, when the facility's block has come (as in an audit,
            // `prefetch_for_audit`).
            let mut far = shares.iter().flatten().skip(8);
            let mut near = shares.iter().flatten().skip(4);
            for &(at, month, figures, index) in shares.iter().flatten() {
                if let Some(&(ahead, ..)) = far.next() {
                    crate::prefetch::value(&*facilities[ahead]);
                }
                if let Some((ahead, _, figures, _)) = near.next() {
                    facilities[*ahead].prefetch_series_for(figures);
                }
                Arc::make_mut(&mut facilities[at]).set_report(month, figures, index);
            }
        });
        unseen
    }

    /// Where a change's report goes, if it is one.
    fn find<Id: Borrow<str>>(&self, change: &Change<Id>) -> Found {
        let Touch::Report(report) = &change.touch else {
            return Found::Skip;
        };
        match self.position.get(report.facility_id.borrow()) {
            Some(&at) => Found::At(at),
            None => Found::Unseen,
        }
    }
}

/// A change's place among the facilities.
enum Found {
    /// A report for the facility at this position.
    At(usize),
    /// A report for a facility the snapshot does not have.
    Unseen,
    /// Not a report.
    Skip,
}

/// Changes per thread when finding their facilities.
const REPORTS_PER_THREAD: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::facts::tests::registered;
    use crate::domain::bodies::PowerReport;
    use crate::domain::figures::ReportFigures;
    use crate::domain::records::ReportBody;

    fn facility(id: &str, registered_at: u64) -> FacilityFacts {
        let record = registered(id, registered_at);
        FacilityFacts::new(Vec::new(), Vec::new(), Vec::new(), Vec::new(), record)
    }

    fn power(facility_id: &str, index: u64) -> Change {
        Change {
            index,
            touch: Touch::Report(
                ReportFigures::of(&ReportBody::Power(&PowerReport {
                    facility_id: facility_id.into(),
                    period: "2025-01".into(),
                    consumed_kwh: index,
                    it_kwh: 1,
                    green_kwh: 0,
                    resold_kwh: 0,
                    resale_revenue_minor: 0,
                    currency: "CNY".into(),
                }))
                .expect("a month"),
            ),
        }
    }

    #[test]
    fn facilities_stay_in_id_order_and_a_reload_replaces_its_namesake() {
        let mut all = Facilities::default();
        all.insert(vec![facility("F-c", 1), facility("F-a", 2)]);
        all.insert(vec![facility("F-b", 3), facility("F-a", 9)]);
        let ids: Vec<&str> = all.iter().map(FacilityFacts::id).collect();
        assert_eq!(ids, ["F-a", "F-b", "F-c"]);
        assert_eq!(
            all.get("F-a").map(|f| f.records.facility.registered_at),
            Some(9)
        );
        assert_eq!(
            all.get("F-c").map(|f| f.records.facility.registered_at),
            Some(1)
        );
        assert!(all.get("F-d").is_none());
    }

    /// Enough facilities for more than one shard on a machine with several cores.
    fn three_hundred() -> Facilities {
        let mut all = Facilities::default();
        all.insert(
            (0..300)
                .map(|k| facility(&format!("F-{k:03}"), k))
                .collect(),
        );
        all
    }

    #[test]
    fn reports_land_with_their_facility_in_ledger_order_on_every_shard() {
        let mut all = three_hundred();
        let changes = vec![
            power("F-000", 10),
            power("F-299", 11),
            power("F-150", 12),
            power("F-299", 13),
            power("F-007", 14),
            power("F-nowhere", 15),
        ];
        let unseen = all.put_reports(&changes);
        assert_eq!(unseen, BTreeSet::from(["F-nowhere".to_string()]));
        let month = Month::parse("2025-01").unwrap();
        let index = |id: &str| {
            all.get(id)
                .and_then(|f| f.power.get(&month))
                .map(|r| r.index)
        };
        assert_eq!(index("F-000"), Some(10));
        assert_eq!(index("F-150"), Some(12));
        // The later of two reports for a month counts.
        assert_eq!(index("F-299"), Some(13));
        assert_eq!(index("F-007"), Some(14));
    }

    #[test]
    fn reports_in_later_shares_land_after_those_in_earlier_ones() {
        let mut all = three_hundred();
        // More reports than one share holds, each facility's last in the last share.
        let changes: Vec<Change> = (0..(2 * REPORTS_PER_THREAD + 7) as u64)
            .map(|i| power(&format!("F-{:03}", i % 300), 100 + i))
            .collect();
        let last: Vec<(String, u64)> = changes
            .iter()
            .rev()
            .take(300)
            .map(|c| match &c.touch {
                Touch::Report(r) => (r.facility_id.clone(), c.index),
                Touch::Facility(_) => unreachable!("only reports here"),
            })
            .collect();
        assert!(all.put_reports(&changes).is_empty());
        let month = Month::parse("2025-01").unwrap();
        for (id, index) in last {
            let f = all.get(&id).expect("a facility");
            assert_eq!(f.power.get(&month).map(|r| r.index), Some(index), "{id}");
            assert_eq!(
                f.power.get(&month).map(|r| r.body.consumed_kwh),
                Some(index),
                "{id}"
            );
        }
    }
}
