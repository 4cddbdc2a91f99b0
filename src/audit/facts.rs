//! What the audit knows about one facility, loaded once from the projections, and the
//! definitions of PROTOCOL §8 over it: status at a date, GPUs at a facility, utilization,
//! permit coverage. Pure functions of the loaded facts; no I/O.

use std::sync::{Arc, Mutex};

use time::Date;

use super::cache::Periods;

use crate::dates::{Month, parse_date};
use crate::domain::bodies::{PermitKind, Status};
use crate::domain::figures::{Currency, Figures, MeterFigures, OccupancyFigures, PowerFigures};
use crate::domain::records::{
    FacilityRecord, Inspection, LoanRecord, LotRecord, PermitRecord, SubsidyRecord,
};
use crate::exact::total;
use crate::prefetch;

/// A report that counts, with the entry it came from.
#[derive(Clone, Debug)]
pub struct Dated<T> {
    pub body: T,
    pub index: u64,
}

/// One facility and everything recorded about it. Snapshots share a facility's facts
/// until one of them changes it (copy on write, `Arc::make_mut`). A month of reports
/// changes every facility, so what a copy copies is kept small: the records, which
/// only a reload replaces, are shared behind one `Arc`, and each series shares all but
/// its most recent reports.
#[derive(Clone, Debug)]
pub struct FacilityFacts {
    pub records: Arc<Records>,
    pub power: Series<PowerFigures>,
    pub meter: Series<MeterFigures>,
    pub occupancy: Series<OccupancyFigures>,
    /// Which months' reports changed, and when, so that an audit can revisit only those.
    revisions: Journal,
    /// The period findings audits keep about these facts. They rest on these records,
    /// so reloading the records starts them afresh.
    pub(super) kept: Kept,
}

/// A facility's three series of reports, carried from one snapshot's facts to facts of
/// its newer records (a reload), sharing what the series share.
#[derive(Clone, Debug)]
pub(super) struct Reports {
    power: Series<PowerFigures>,
    meter: Series<MeterFigures>,
    occupancy: Series<OccupancyFigures>,
}

/// A facility's records: everything about it but its monthly reports.
#[derive(Debug)]
pub struct Records {
    pub facility: FacilityRecord,
    pub lots: Vec<LotRecord>,
    pub permits: Vec<PermitRecord>,
    pub subsidies: Vec<SubsidyRecord>,
    pub loans: Vec<LoanRecord>,
    /// Statuses, GPU moves and permit validity, parsed and sorted by date once: the
    /// rules ask what held on a date, for every period.
    timeline: Timeline,
    /// The dates of lots, subsidies, loans and inspections, parsed once and kept in
    /// their records' order, beside the records they date.
    dates: Dates,
}

/// The kept period findings, behind a lock because audits of one snapshot run side by
/// side; a copy of the facts (a newer snapshot's) starts from a copy of them.
#[derive(Debug, Default)]
pub(super) struct Kept(pub(super) Mutex<Periods>);

impl Clone for Kept {
    fn clone(&self) -> Kept {
        Kept(Mutex::new(
            self.0.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        ))
    }
}

/// Numbers every change to a facility's reports and remembers the latest ones' months.
/// Held inline: every refresh that a request's snapshot makes copy copies it.
#[derive(Clone, Debug)]
struct Journal {
    current: u64,
    /// The month of each revision after `floor`, oldest first: revisions are
    /// consecutive, so `recent[i]` is revision `floor + 1 + i`. Those from
    /// `current - floor` on are not revisions yet, and never read.
    recent: [Month; JOURNAL_LIMIT],
    floor: u64,
}

/// Changes the journal keeps; a reader further behind re-reads every month. Three
/// series of monthly reports make two or three changes a month, so this reaches back
/// over five monthly refreshes that no audit followed; the initial load's hundreds of
/// changes per facility are dropped rather than kept. Small, as every facility holds
/// it inline (8 bytes a month) and a copy of a snapshot copies every facility's.
const JOURNAL_LIMIT: usize = 16;

impl Default for Journal {
    fn default() -> Journal {
        Journal {
            current: 0,
            // Not revisions yet: `since` reads only the first `current - floor`.
            recent: [Month {
                year: 1970,
                month: 1,
            }; JOURNAL_LIMIT],
            floor: 0,
        }
    }
}

impl Journal {
    /// How many revisions the journal holds: at most `JOURNAL_LIMIT`.
    fn held(&self) -> usize {
        let held = self
            .current
            .checked_sub(self.floor)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n <= JOURNAL_LIMIT);
        held.unwrap_or_else(|| {
            unreachable!(
                "the journal holds revisions {} to {}, beyond its {JOURNAL_LIMIT}",
                self.floor, self.current
            )
        })
    }

    fn record(&mut self, month: Month) {
        let previous = self.current;
        if self.held() == JOURNAL_LIMIT {
            self.floor = previous;
        }
        let at = self.held();
        self.recent[at] = month;
        self.current = previous
            .checked_add(1)
            .unwrap_or_else(|| unreachable!("2^64 revisions of one facility"));
    }

    fn since(&self, since: u64) -> Option<impl Iterator<Item = Month> + '_> {
        // Revisions are consecutive, so the newer ones are the last `current - since`,
        // found without reading them: every audit asks of every facility, and nearly
        // always of one with no newer revision.
        (since >= self.floor).then(|| {
            let held = self.held();
            // More than the journal holds reads it all.
            let newer = usize::try_from(self.current.saturating_sub(since)).unwrap_or(usize::MAX);
            self.recent[held.saturating_sub(newer)..held]
                .iter()
                .copied()
        })
    }
}

/// Status changes, GPU moves and permit validity, by date.
#[derive(Clone, Debug, Default)]
struct Timeline {
    /// (effective, entry, status), by effective date then ledger order.
    statuses: Vec<(Date, u64, Status)>,
    /// (date, GPUs arriving (+) or leaving (−), entry), by date.
    moves: Vec<(Date, i64, u64)>,
    /// GPUs at the facility after each move: `gpus[i]` sums `moves[..=i]`. i128: each
    /// move is below 2^53 GPUs, so no count of moves a ledger can hold overflows it.
    gpus: Vec<i128>,
    /// Permits with a non-empty validity: (kind, first day, last day, issuing entry),
    /// by first day.
    permits: Vec<(PermitKind, Date, Date, u64)>,
}

impl Timeline {
    fn new(facility: &FacilityRecord, permits: &[PermitRecord]) -> Timeline {
        let mut statuses: Vec<_> = facility
            .statuses
            .iter()
            .map(|s| (day(&s.effective), s.index, s.status))
            .collect();
        statuses.sort_by_key(|s| (s.0, s.1));
        let mut moves: Vec<_> = facility
            .gpu_moves
            .iter()
            .map(|m| (day(&m.date), m.delta, m.index))
            .collect();
        moves.sort_by_key(|m| (m.0, m.2));
        let gpus = moves
            .iter()
            .scan(0i128, |total, m| {
                *total = total
                    .checked_add(i128::from(m.1))
                    .unwrap_or_else(|| unreachable!("fewer than 2^64 moves below 2^63"));
                Some(*total)
            })
            .collect();
        let mut permits: Vec<_> = permits
            .iter()
            .filter_map(|p| {
                let (from, until) = validity(p);
                (from <= until).then_some((p.issued.kind, from, until, p.issued_at))
            })
            .collect();
        permits.sort_by_key(|p| (p.1, p.2, p.3));
        Timeline {
            statuses,
            moves,
            gpus,
            permits,
        }
    }
}

/// A subsidy disbursement, its date parsed.
#[derive(Clone, Copy, Debug)]
pub struct Disbursed {
    /// The subsidy's position in `FacilityFacts::subsidies`.
    pub subsidy: usize,
    pub date: Date,
    pub amount_minor: u64,
    /// The disbursement's own currency, which the money it counts in (PROTOCOL §9).
    pub currency: Currency,
    pub index: u64,
}

/// The dates of the records the rules read at every audit, parsed once and held
/// inline: parsing them again, and reaching their strings scattered over the heap,
/// cost more than the rules' own arithmetic. Each list follows its records' order.
#[derive(Clone, Debug, Default)]
struct Dates {
    /// Each lot's procurement date.
    procured: Vec<Date>,
    /// The dates of each lot's moves, lot after lot.
    moved: Vec<Date>,
    /// Each subsidy's grant date.
    granted: Vec<Date>,
    /// Each subsidy's condition deadline, if it has a condition.
    condition_by: Vec<Option<Date>>,
    /// Every disbursement, subsidy after subsidy.
    disbursed: Vec<Disbursed>,
    /// Each loan's date.
    loans: Vec<Date>,
    /// Each inspection's date.
    inspected: Vec<Date>,
    /// Each permit's first day of validity.
    permits_from: Vec<Date>,
}

impl Dates {
    fn new(
        facility: &FacilityRecord,
        lots: &[LotRecord],
        subsidies: &[SubsidyRecord],
        loans: &[LoanRecord],
        permits: &[PermitRecord],
    ) -> Dates {
        Dates {
            procured: lots.iter().map(|l| day(&l.procured.date)).collect(),
            moved: lots
                .iter()
                .flat_map(|l| &l.moves)
                .map(|m| day(&m.date))
                .collect(),
            granted: subsidies.iter().map(|s| day(&s.granted.date)).collect(),
            condition_by: subsidies
                .iter()
                .map(|s| s.granted.condition.as_ref().map(|c| day(&c.by)))
                .collect(),
            disbursed: subsidies
                .iter()
                .enumerate()
                .flat_map(|(subsidy, s)| {
                    s.disbursements.iter().map(move |d| Disbursed {
                        subsidy,
                        date: day(&d.date),
                        amount_minor: d.amount_minor,
                        currency: currency(&d.currency),
                        index: d.index,
                    })
                })
                .collect(),
            loans: loans.iter().map(|l| day(&l.date)).collect(),
            inspected: facility.inspections.iter().map(|i| day(&i.date)).collect(),
            permits_from: permits.iter().map(|p| day(&p.issued.valid_from)).collect(),
        }
    }
}

/// The days a permit is valid: from `valid_from` to `valid_until`, ending the day
/// before the earliest revocation.
fn validity(p: &PermitRecord) -> (Date, Date) {
    let mut until = day(&p.issued.valid_until);
    if let Some(rev) = p.revocations.iter().map(|r| day(&r.effective)).min() {
        // Dates start at 1970-01-01 (`dates::YEARS`), so every one has a day before.
        let before = rev
            .previous_day()
            .unwrap_or_else(|| unreachable!("{rev} is a ledger date, after 1970-01-01"));
        until = until.min(before);
    }
    (day(&p.issued.valid_from), until)
}

/// One monthly series of a facility: the report that counts for each month, by month.
/// Sorted vectors rather than a map: every audit walks every facility's series, which
/// then lie contiguous in memory. Two of them, every month of the first before every
/// month of the second: the settled reports, shared by every copy of the series, and at
/// most `RECENT_REPORTS` recent ones, the only ones a copy copies. A newer snapshot
/// copies every series a month of reports reaches, which is every series: copying each
/// facility's whole history made a refresh at a million entries take 90–600 ms.
#[derive(Debug)]
pub struct Series<T> {
    settled: Arc<[(Month, Dated<T>)]>,
    recent: Vec<(Month, Dated<T>)>,
}

/// A copy is made to take the next month's report: its recent part is made with room
/// for one more, where a derived copy (capacity = length) moved on that report to a block
/// of twice the size. In a refresh beside a request that holds the snapshot, that move
/// was a third of the memory faulted in (BENCHMARKS.md, twenty-sixth pass).
impl<T: Clone> Clone for Series<T> {
    fn clone(&self) -> Self {
        let mut recent = Vec::with_capacity(self.recent.len().saturating_add(1));
        recent.extend_from_slice(&self.recent);
        Series {
            settled: self.settled.clone(),
            recent,
        }
    }
}

/// Recent reports a series holds before it settles them: a year and a quarter of
/// monthly reports. A copy copies up to this many; settling copies the whole series
/// once per this many new months.
const RECENT_REPORTS: usize = 15;

impl<T> Default for Series<T> {
    fn default() -> Self {
        Series {
            settled: Arc::from(Vec::new()),
            recent: Vec::new(),
        }
    }
}

impl<T> Series<T> {
    pub fn get(&self, month: &Month) -> Option<&Dated<T>> {
        let (_, part) = self.part_for(*month);
        let (m, report) = part[..count_through(part, *month)].last()?;
        (m == month).then_some(report)
    }

    pub fn contains_key(&self, month: &Month) -> bool {
        self.get(month).is_some()
    }

    /// The months reported, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Month> {
        self.all().iter().map(|(m, _)| m)
    }

    /// Asks for the last `lines` cache lines of the latest reports (what a new report,
    /// an audit's window and a new month's rules read): the recent part's, then the
    /// settled part's end for what the recent part is too short to hold.
    fn prefetch_latest(&self, lines: usize) {
        prefetch::tail(&self.recent, lines);
        let recent_lines = size_of_val(self.recent.as_slice()).div_ceil(prefetch::LINE_BYTES);
        if recent_lines < lines {
            prefetch::tail(&self.settled, lines.saturating_sub(recent_lines));
        }
    }

    /// Every report, by month.
    fn all(&self) -> Span<'_, T> {
        Span {
            older: &self.settled,
            newer: &self.recent,
        }
    }

    /// The reports after `after` (all if None) up to and including `last`, by month.
    pub fn between(&self, after: Option<Month>, last: Month) -> Span<'_, T> {
        let upto = self.count_through(last);
        let from = after.map_or(0, |a| self.count_through(a)).min(upto);
        let settled = self.settled.len();
        Span {
            older: &self.settled[from.min(settled)..upto.min(settled)],
            newer: &self.recent[from.saturating_sub(settled)..upto.saturating_sub(settled)],
        }
    }

    /// The part that holds `month` if either does, after how many reports of the other:
    /// searched alone, the other part is not touched.
    fn part_for(&self, month: Month) -> (usize, &[(Month, Dated<T>)]) {
        match self.recent.first() {
            Some((first, _)) if *first <= month => (self.settled.len(), &self.recent),
            _ => (0, &self.settled),
        }
    }

    /// How many reports are for months up to and including `last`.
    fn count_through(&self, last: Month) -> usize {
        let (before, part) = self.part_for(last);
        // Within the series' length: no sum can reach usize::MAX.
        before.saturating_add(count_through(part, last))
    }
}

impl<T: Clone> Series<T> {
    /// Puts a report in place unless a later entry already reported the month: the
    /// latest report counts (PROTOCOL §6), whatever order they are recorded in here.
    /// Returns whether the series changed.
    fn keep_latest(&mut self, month: Month, body: T, index: u64) -> bool {
        let recent = self.settled.last().is_none_or(|(last, _)| month > *last);
        let changed = if recent {
            keep_latest(&mut self.recent, month, Dated { body, index })
        } else {
            // A report for a settled month, rare after the first load: the series is
            // settled again whole with it.
            let mut all = self.take_all();
            let changed = keep_latest(&mut all, month, Dated { body, index });
            self.settled = Arc::from(all);
            changed
        };
        if self.recent.len() > RECENT_REPORTS {
            self.settled = Arc::from(self.take_all());
        }
        debug_assert!(
            self.all()
                .iter()
                .zip(self.all().iter().skip(1))
                .all(|(a, b)| a.0 < b.0)
                && self.recent.len() <= RECENT_REPORTS,
            "series sorted by month, at most RECENT_REPORTS recent"
        );
        changed
    }

    /// Every report, in a vector of their own, leaving the recent part empty.
    fn take_all(&mut self) -> Vec<(Month, Dated<T>)> {
        let mut all = self.settled.to_vec();
        all.append(&mut self.recent);
        all
    }
}

/// A run of a series' reports in month order: the settled ones, then the recent ones.
#[derive(Debug)]
pub struct Span<'s, T> {
    older: &'s [(Month, Dated<T>)],
    newer: &'s [(Month, Dated<T>)],
}

// Not derived: a derive would ask `T: Copy` of the figures, where only references are copied.
impl<T> Clone for Span<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Span<'_, T> {}

impl<'s, T> Span<'s, T> {
    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = &'s (Month, Dated<T>)> + Clone + use<'s, T> {
        self.into_iter()
    }

    pub fn len(&self) -> usize {
        // Two slices' lengths: no sum can reach usize::MAX.
        self.older.len().saturating_add(self.newer.len())
    }

    pub fn is_empty(&self) -> bool {
        self.older.is_empty() && self.newer.is_empty()
    }

    pub fn first(&self) -> Option<&'s (Month, Dated<T>)> {
        self.older.first().or(self.newer.first())
    }

    pub fn last(&self) -> Option<&'s (Month, Dated<T>)> {
        self.newer.last().or(self.older.last())
    }
}

impl<'s, T> IntoIterator for Span<'s, T> {
    type Item = &'s (Month, Dated<T>);
    type IntoIter = std::iter::Chain<
        std::slice::Iter<'s, (Month, Dated<T>)>,
        std::slice::Iter<'s, (Month, Dated<T>)>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.older.iter().chain(self.newer)
    }
}

/// How many of the month-sorted `s` are for months up to and including `last`,
/// searched from the newest end (exponential search): new reports and audit windows
/// are at the newest months, and in a series that has gone cold in memory every probe
/// of a binary search over the whole of it would be a cache miss.
fn count_through<T>(s: &[(Month, T)], last: Month) -> usize {
    // Every entry from `after` on is for a month after `last`.
    let mut after = s.len();
    let mut step = 1;
    while after > 0 {
        let probe = after.saturating_sub(step);
        if s[probe].0 <= last {
            // Index arithmetic within the series' length: no sum can reach usize::MAX.
            return probe.saturating_add(s[probe..after].partition_point(|(m, _)| *m <= last));
        }
        after = probe;
        step = step.saturating_mul(2);
    }
    0
}

/// Puts `report` in the month-sorted `s` unless a later entry already reported the
/// month; returns whether `s` changed.
fn keep_latest<T>(s: &mut Vec<(Month, Dated<T>)>, month: Month, report: Dated<T>) -> bool {
    let n = count_through(s, month);
    match n.checked_sub(1).and_then(|i| s.get_mut(i)) {
        Some((m, kept)) if *m == month && kept.index >= report.index => false,
        Some((m, kept)) if *m == month => {
            *kept = report;
            true
        }
        _ => {
            s.insert(n, (month, report));
            true
        }
    }
}

/// A date field of a record. Records hold only dates ingest validated, so anything else
/// means the derived state is damaged: an invariant, not an input to guess about.
pub fn day(s: &str) -> Date {
    parse_date(s).unwrap_or_else(|| {
        panic!("a record holds {s:?} where ingest admits only dates: the derived state is damaged; run `dcledger reindex`")
    })
}

/// A currency field of a record, which ingest admits only as three capitals; like
/// `day`, anything else is damage.
fn currency(s: &str) -> Currency {
    Currency::new(s).unwrap_or_else(|e| {
        panic!("a record holds {e}: the derived state is damaged; run `dcledger reindex`")
    })
}

impl FacilityFacts {
    /// Asks for the records' own block: the first of two steps, a facility or two apart
    /// (`Facilities::prefetch_for_audit`), that bring what an audit reads first.
    pub(super) fn prefetch_records(&self) {
        prefetch::value(&*self.records);
    }

    /// The second step of `prefetch_records`, once the records' block has come: the
    /// starts of the vectors the rules walk (a facility has a few lots of 280 bytes, a
    /// few statuses, moves, permits and disbursements), and the latest reports of each
    /// series, where a window of a year ends and a new month's rules look (reports are
    /// about 56 bytes, so twelve lines hold a year). A facility's own statuses are read
    /// only for a finding's evidence, so not asked for.
    pub(super) fn prefetch_read_by_audit(&self) {
        let r = &*self.records;
        prefetch::head(&r.lots, 10);
        prefetch::head(&r.subsidies, 5);
        prefetch::head(&r.timeline.statuses, 3);
        prefetch::head(&r.timeline.moves, 3);
        prefetch::head(&r.timeline.gpus, 1);
        prefetch::head(&r.timeline.permits, 3);
        prefetch::head(&r.dates.procured, 1);
        prefetch::head(&r.dates.moved, 1);
        prefetch::head(&r.dates.disbursed, 3);
        self.power.prefetch_latest(12);
        self.occupancy.prefetch_latest(12);
        self.meter.prefetch_latest(2);
    }

    /// Asks for the latest reports of the series `figures` goes to, for `set_report`.
    pub(super) fn prefetch_series_for(&self, figures: &Figures) {
        match figures {
            Figures::Power(_) => self.power.prefetch_latest(2),
            Figures::Meter(_) => self.meter.prefetch_latest(2),
            Figures::Occupancy(_) => self.occupancy.prefetch_latest(2),
        }
    }

    /// A facility's facts without its reports; `set_report` adds them.
    pub fn new(
        lots: Vec<LotRecord>,
        permits: Vec<PermitRecord>,
        subsidies: Vec<SubsidyRecord>,
        loans: Vec<LoanRecord>,
        facility: FacilityRecord,
    ) -> FacilityFacts {
        FacilityFacts {
            records: Arc::new(Records {
                timeline: Timeline::new(&facility, &permits),
                dates: Dates::new(&facility, &lots, &subsidies, &loans, &permits),
                facility,
                lots,
                permits,
                subsidies,
                loans,
            }),
            power: Series::default(),
            meter: Series::default(),
            occupancy: Series::default(),
            revisions: Journal::default(),
            kept: Kept::default(),
        }
    }

    /// The facility's reports, shared, for facts of newer records (`with_reports`).
    pub(super) fn reports(&self) -> Reports {
        Reports {
            power: self.power.clone(),
            meter: self.meter.clone(),
            occupancy: self.occupancy.clone(),
        }
    }

    /// These facts, just made from a facility's newer records (`new`), with the reports
    /// an older snapshot's facts of it hold. Their kept period findings and the
    /// revisions those count from stay these facts' own, empty: the findings rest on the
    /// records, so an audit evaluates every month afresh, as after any reload.
    pub(super) fn with_reports(self, reports: Reports) -> FacilityFacts {
        FacilityFacts {
            power: reports.power,
            meter: reports.meter,
            occupancy: reports.occupancy,
            ..self
        }
    }

    /// Records a report admitted at `index`. The latest report for a series and period
    /// is the one that counts (PROTOCOL §6), whatever order they are recorded in here.
    pub fn set_report(&mut self, month: Month, figures: Figures, index: u64) {
        let changed = match figures {
            Figures::Power(f) => self.power.keep_latest(month, f, index),
            Figures::Meter(f) => self.meter.keep_latest(month, f, index),
            Figures::Occupancy(f) => self.occupancy.keep_latest(month, f, index),
        };
        if changed {
            self.revisions.record(month);
        }
    }

    /// The months whose reports changed after revision `since`, or None if the journal
    /// no longer reaches back that far.
    pub fn revised_since(&self, since: u64) -> Option<impl Iterator<Item = Month> + '_> {
        self.revisions.since(since)
    }

    /// The current report revision, for `revised_since`.
    pub fn revision(&self) -> u64 {
        self.revisions.current
    }

    pub fn id(&self) -> &str {
        self.records.facility.id()
    }

    /// Each lot with its procurement date and its moves' dates, in order.
    pub fn dated_lots(&self) -> impl Iterator<Item = (&LotRecord, Date, &[Date])> + Clone {
        let mut start = 0usize;
        self.records
            .lots
            .iter()
            .zip(&self.records.dates.procured)
            .map(move |(lot, &procured)| {
                let end = start.saturating_add(lot.moves.len());
                let moved = &self.records.dates.moved[start..end];
                start = end;
                (lot, procured, moved)
            })
    }

    /// Each subsidy with its grant date.
    pub fn dated_subsidies(&self) -> impl Iterator<Item = (&SubsidyRecord, Date)> {
        self.records
            .subsidies
            .iter()
            .zip(self.records.dates.granted.iter().copied())
    }

    /// The deadline of the condition of the subsidy at `position`, if it has one.
    pub fn condition_deadline(&self, position: usize) -> Option<Date> {
        self.records
            .dates
            .condition_by
            .get(position)
            .copied()
            .flatten()
    }

    /// Every disbursement, subsidy after subsidy.
    pub fn disbursements(&self) -> &[Disbursed] {
        &self.records.dates.disbursed
    }

    /// Each permit with the first day of its validity.
    pub fn dated_permits(&self) -> impl Iterator<Item = (&PermitRecord, Date)> {
        self.records
            .permits
            .iter()
            .zip(self.records.dates.permits_from.iter().copied())
    }

    /// Each loan with its date.
    pub fn dated_loans(&self) -> impl Iterator<Item = (&LoanRecord, Date)> {
        self.records
            .loans
            .iter()
            .zip(self.records.dates.loans.iter().copied())
    }

    /// Each inspection with its date.
    pub fn dated_inspections(&self) -> impl Iterator<Item = (&Inspection, Date)> {
        self.records
            .facility
            .inspections
            .iter()
            .zip(self.records.dates.inspected.iter().copied())
    }

    /// The latest `facility.status` effective on or before `date` (by effective date,
    /// then ledger order), with its entry; `announced` before any.
    pub fn status_at(&self, date: Date) -> (Status, Option<u64>) {
        let statuses = &self.records.timeline.statuses;
        match statuses[..statuses.partition_point(|s| s.0 <= date)].last() {
            None => (Status::Announced, None),
            Some(&(_, index, status)) => (status, Some(index)),
        }
    }

    /// Days (each an effective date up to `until`) on which the status changed, with
    /// the status from then on.
    pub fn status_changes(&self, until: Date) -> Vec<(Date, Status, u64)> {
        let statuses = &self.records.timeline.statuses;
        let known = &statuses[..statuses.partition_point(|s| s.0 <= until)];
        // The last status of each day is the one in force from that day on.
        known
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                known
                    .get(i.saturating_add(1))
                    .is_none_or(|next| next.0 != s.0)
            })
            .map(|(_, s)| (s.0, s.2, s.1))
            .collect()
    }

    /// Was the status one of `wanted` on some day of `[from, to]`? Returns the entry
    /// that made it so.
    pub fn status_in(&self, from: Date, to: Date, wanted: &[Status]) -> Option<u64> {
        if let (s, Some(index)) = self.status_at(from)
            && wanted.contains(&s)
        {
            return Some(index);
        }
        self.status_changes(to)
            .into_iter()
            .find(|(d, s, _)| *d > from && wanted.contains(s))
            .map(|(_, _, index)| index)
    }

    /// Operational on the first and on the last day of `month` (PROTOCOL §8).
    pub fn operational_through(&self, month: Month) -> bool {
        self.status_at(month.first_day()).0 == Status::Operational
            && self.status_at(month.last_day()).0 == Status::Operational
    }

    /// GPUs at the facility on `date`: deployments and transfers to it minus transfers
    /// from it, dated on or before it.
    pub fn gpus_on(&self, date: Date) -> i128 {
        let n = self.records.timeline.moves.partition_point(|m| m.0 <= date);
        n.checked_sub(1)
            .map_or(0, |last| self.records.timeline.gpus[last])
    }

    /// The entries `gpus_on(date)` counts.
    pub fn gpu_evidence(&self, date: Date) -> Vec<u64> {
        let moves = &self.records.timeline.moves;
        moves[..moves.partition_point(|m| m.0 <= date)]
            .iter()
            .map(|m| m.2)
            .collect()
    }

    /// Σ sold and Σ available over the occupancy reports of the months `first` to
    /// `last`, with their entries; utilization is undefined (None) with no reports or
    /// nothing available.
    pub fn utilization(
        &self,
        first: Month,
        last: Month,
    ) -> (Option<(u128, u128)>, impl Iterator<Item = u64> + '_) {
        let reports = self.occupancy.between(Some(first.plus(-1)), last);
        let sold = total(reports.iter().map(|(_, r)| r.body.gpu_hours_sold));
        let available = total(reports.iter().map(|(_, r)| r.body.gpu_hours_available));
        // Read only by a rule that fires.
        let evidence = reports.iter().map(|(_, r)| r.index);
        if reports.is_empty() || available == 0 {
            (None, evidence)
        } else {
            (Some((sold, available)), evidence)
        }
    }

    /// Is every day of `month` inside some valid permit of `kind` (see `validity`)?
    pub fn covered(&self, kind: PermitKind, month: Month) -> bool {
        let (first, last) = (month.first_day(), month.last_day());
        let mut reached = first;
        // Spans come by first day, so a gap before one is a gap for good.
        for &(k, from, until, _) in &self.records.timeline.permits {
            if k != kind || until < reached {
                continue;
            }
            if from > reached {
                return false;
            }
            match until.next_day() {
                Some(next) if until < last => reached = next,
                _ => return true,
            }
        }
        false
    }

    /// The permits of `kind` valid on some day of `month`: the evidence of `covered`
    /// either way.
    pub fn permits_during(&self, kind: PermitKind, month: Month) -> Vec<u64> {
        self.permits_valid(kind, month.first_day(), month.last_day())
    }

    /// The permits of `kind` valid on some day from `first` to `last`.
    pub fn permits_valid(&self, kind: PermitKind, first: Date, last: Date) -> Vec<u64> {
        self.records
            .timeline
            .permits
            .iter()
            .filter(|&&(k, from, until, _)| k == kind && from <= last && until >= first)
            .map(|p| p.3)
            .collect()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::bodies::{FacilityRegister, Procurement};
    use crate::domain::records::{LotMove, LotMoveKind};

    fn month(s: &str) -> Month {
        Month::parse(s).unwrap()
    }

    /// The record of a facility just registered, with nothing else known about it.
    pub(in crate::audit) fn registered(id: &str, registered_at: u64) -> FacilityRecord {
        FacilityRecord::registered(
            FacilityRegister {
                facility_id: id.into(),
                name: id.into(),
                province: "Gansu".into(),
                city: "Qingyang".into(),
                lat_e6: 0,
                lon_e6: 0,
                planned_it_kw: 1,
                planned_gpus: 1,
                land_parcel: "P-1".into(),
                announced: "2024-01-01".into(),
            },
            registered_at,
            "op",
        )
    }

    #[test]
    fn each_lot_is_dated_with_its_own_moves() {
        let lot = |id: &str, procured: &str, moves: &[&str]| LotRecord {
            procured: Procurement {
                lot_id: id.into(),
                facility_id: "F-1".into(),
                gpu_model: "H100".into(),
                quantity: 8,
                unit_price_minor: 1,
                currency: "CNY".into(),
                supplier: "S".into(),
                date: procured.into(),
                invoice_b3: None,
            },
            procured_at: 1,
            undeployed: 0,
            deployed: Vec::new(),
            moves: moves
                .iter()
                .map(|date| LotMove {
                    kind: LotMoveKind::Deployment {
                        facility_id: "F-1".into(),
                    },
                    quantity: 1,
                    date: date.to_string(),
                    index: 2,
                })
                .collect(),
            serials: 0,
            serial_entries: Vec::new(),
        };
        let lots = vec![
            lot("a", "2024-01-01", &["2024-02-01", "2024-03-01"]),
            lot("b", "2024-04-01", &[]),
            lot("c", "2024-05-01", &["2024-06-01"]),
        ];
        let facts = FacilityFacts::new(
            lots,
            Vec::new(),
            Vec::new(),
            Vec::new(),
            registered("F-1", 0),
        );
        let dated: Vec<(&str, String, Vec<String>)> = facts
            .dated_lots()
            .map(|(lot, procured, moved)| {
                let moved = moved.iter().map(Date::to_string).collect();
                (lot.procured.lot_id.as_str(), procured.to_string(), moved)
            })
            .collect();
        let want = |id, procured: &str, moved: &[&str]| {
            (
                id,
                procured.to_string(),
                moved.iter().map(|m| m.to_string()).collect(),
            )
        };
        assert_eq!(
            dated,
            [
                want("a", "2024-01-01", &["2024-02-01", "2024-03-01"]),
                want("b", "2024-04-01", &[]),
                want("c", "2024-05-01", &["2024-06-01"]),
            ]
        );
    }

    #[test]
    fn a_series_keeps_the_latest_entry_per_month_in_month_order() {
        let mut s: Series<&str> = Series::default();
        for (m, body, index) in [
            ("2025-03", "march", 10),
            ("2025-01", "january", 11),
            ("2025-03", "march, corrected", 12),
            // An earlier entry recorded after a later one never replaces it.
            ("2025-03", "march, stale", 9),
        ] {
            s.keep_latest(month(m), body, index);
        }
        assert_eq!(
            s.keys().map(|m| m.to_string()).collect::<Vec<_>>(),
            ["2025-01", "2025-03"]
        );
        let march = s.get(&month("2025-03")).unwrap();
        assert_eq!((march.body, march.index), ("march, corrected", 12));
        assert_eq!(s.between(None, month("2025-02")).len(), 1);
        assert_eq!(s.between(Some(month("2025-01")), month("2025-12")).len(), 1);
        assert!(!s.contains_key(&month("2025-02")));
    }

    #[test]
    fn a_series_counts_the_months_through_any_month_as_a_full_search_would() {
        // Sparse and dense series, every month before, among and after them.
        for months in [
            vec![],
            vec![3],
            vec![0, 1, 2, 3, 4, 5, 6, 7, 8],
            vec![1, 4, 5, 9, 30],
        ] {
            let mut s: Series<()> = Series::default();
            for (k, m) in months.iter().enumerate() {
                s.keep_latest(month("2020-01").plus(*m), (), k as u64);
            }
            for k in -2..35 {
                let last = month("2020-01").plus(k);
                let expected = months.iter().filter(|m| **m <= k).count();
                assert_eq!(s.count_through(last), expected, "{months:?} through {last}");
            }
        }
    }

    proptest::proptest! {
        /// A series, settled and recent parts together, answers as a map from month to
        /// the latest report would: reports in any order, revisions of settled months,
        /// runs of every length across the boundary. A copy made before more reports
        /// keeps its answers and shares the settled part until a settled month changes.
        #[test]
        fn a_series_answers_as_a_map_of_the_latest_reports(
            reports in proptest::collection::vec((0i32..60, 0u64..1000), 0..120),
            cut in 0usize..120,
        ) {
            let at = |k: i32| month("2020-01").plus(k);
            let mut s: Series<u64> = Series::default();
            let mut model: std::collections::BTreeMap<i32, u64> = Default::default();
            let mut copy = None;
            for (n, &(k, index)) in reports.iter().enumerate() {
                if n == cut {
                    copy = Some((s.clone(), model.clone()));
                }
                let newer = model.get(&k).is_none_or(|kept| *kept < index);
                proptest::prop_assert_eq!(s.keep_latest(at(k), index, index), newer);
                if newer {
                    model.insert(k, index);
                }
                proptest::prop_assert!(s.recent.len() <= RECENT_REPORTS);
            }
            let agrees = |s: &Series<u64>, model: &std::collections::BTreeMap<i32, u64>| {
                let keys: Vec<Month> = s.keys().copied().collect();
                let want: Vec<Month> = model.keys().map(|k| at(*k)).collect();
                if keys != want {
                    return false;
                }
                (-1..62).all(|k| {
                    let got = s.get(&at(k)).map(|r| (r.body, r.index));
                    let whole = (-2..62).step_by(7).all(|after| {
                        let run: Vec<u64> =
                            s.between(Some(at(after)), at(k)).iter().map(|(_, r)| r.index).collect();
                        let span = s.between(Some(at(after)), at(k));
                        let want: Vec<u64> = model
                            .range(after.saturating_add(1)..)
                            .take_while(|(m, _)| **m <= k)
                            .map(|(_, i)| *i)
                            .collect();
                        run == want
                            && span.len() == want.len()
                            && span.first().map(|(_, r)| r.index) == want.first().copied()
                            && span.last().map(|(_, r)| r.index) == want.last().copied()
                    });
                    whole && got == model.get(&k).map(|i| (*i, *i))
                })
            };
            proptest::prop_assert!(agrees(&s, &model));
            if let Some((copy, then)) = copy {
                proptest::prop_assert!(agrees(&copy, &then), "the copy kept its answers");
            }
        }
    }

    #[test]
    fn a_copy_of_a_series_shares_its_settled_reports_until_a_settled_month_changes() {
        let mut s: Series<()> = Series::default();
        for k in 0..40 {
            s.keep_latest(month("2020-01").plus(k), (), 1);
        }
        let copy = s.clone();
        assert!(!s.settled.is_empty());
        // A copy takes the next month in the block it was made in.
        let mut next = s.clone();
        let block = next.recent.as_ptr();
        next.keep_latest(month("2020-01").plus(40), (), 1);
        assert_eq!(next.recent.as_ptr(), block, "a copy has room for one more");
        s.keep_latest(month("2020-01").plus(40), (), 1);
        assert!(
            Arc::ptr_eq(&s.settled, &copy.settled),
            "a new month is recent"
        );
        s.keep_latest(month("2020-01").plus(2), (), 2);
        assert!(
            !Arc::ptr_eq(&s.settled, &copy.settled),
            "a revision settles anew"
        );
        assert_eq!(copy.get(&month("2020-03")).map(|r| r.index), Some(1));
        assert_eq!(s.get(&month("2020-03")).map(|r| r.index), Some(2));
    }

    #[test]
    fn the_journal_names_the_months_revised_since_a_revision_while_it_reaches_back() {
        let mut j = Journal::default();
        let months: Vec<Month> = (0..100).map(|k| month("2020-01").plus(k)).collect();
        for m in &months[..3] {
            j.record(*m);
        }
        assert_eq!(j.since(1).unwrap().collect::<Vec<_>>(), months[1..3]);
        for m in &months[3..] {
            j.record(*m);
        }
        assert_eq!(j.current, 100);
        // Further behind than the journal reaches: the reader must start over.
        assert!(j.since(1).is_none());
        assert_eq!(j.since(97).unwrap().collect::<Vec<_>>(), months[97..]);
        assert_eq!(j.since(100).unwrap().count(), 0);
    }
}
