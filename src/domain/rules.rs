//! The ledger-dependent rules of the domain kinds (PROTOCOL §6–7) and their effects on the
//! projections. Each kind checks, in PROTOCOL §6's order, references (422), then ownership
//! (403), then duplicates and quantities (409), and only then writes.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::bodies as b;
use super::figures::ReportFigures;
use super::records::*;
use crate::entry::{Role, Roles};
use crate::registry::{self, AdmitError};
use crate::reject::Rejection;
use crate::store::derived::{DerivedError, Overlay};
use crate::store::first_seen::ListingRef;

/// Who signed the entry being admitted.
pub struct Signer<'a> {
    pub org_id: &'a str,
    pub roles: Roles,
}

fn path(field: &str) -> String {
    format!("/entry/body/{field}")
}

/// The record under `key`, or a 422 naming `field`.
fn existing<T: DeserializeOwned>(
    state: &Overlay<'_>,
    key: &[u8],
    field: &str,
    what: &str,
    id: &str,
) -> Result<T, AdmitError> {
    state
        .get_decoded(key)?
        .ok_or_else(|| not_registered(field, what, id))
}

/// The 422 of a reference, in `field`, to an id that is not registered.
fn not_registered(field: &str, what: &str, id: &str) -> AdmitError {
    Rejection::unknown_reference(path(field), format!("{what} {id:?} is not registered")).into()
}

fn org_exists(state: &Overlay<'_>, field: &str, org_id: &str) -> Result<(), AdmitError> {
    match registry::org(state, org_id)? {
        Some(_) => Ok(()),
        None => Err(Rejection::unknown_reference(
            path(field),
            format!("organisation {org_id:?} is not registered"),
        )
        .into()),
    }
}

/// 409 if `key` is taken.
fn fresh(
    state: &Overlay<'_>,
    key: &[u8],
    field: &str,
    what: &str,
    id: &str,
) -> Result<(), AdmitError> {
    if state.contains(key)? {
        return Err(Rejection::conflict(
            path(field),
            format!("{what} {id:?} is already registered"),
        )
        .into());
    }
    Ok(())
}

/// 403 unless the signer's organisation operates the facility.
fn operates(f: &FacilityRecord, signer: &Signer<'_>, field: &str) -> Result<(), AdmitError> {
    if f.operator != signer.org_id {
        return Err(Rejection::forbidden(
            path(field),
            format!(
                "facility {:?} is operated by {:?}, not by the signer's organisation {:?}",
                f.id(),
                f.operator,
                signer.org_id
            ),
        )
        .into());
    }
    Ok(())
}

fn facility(state: &Overlay<'_>, field: &str, id: &str) -> Result<FacilityRecord, AdmitError> {
    existing(state, &facility_key(id), field, "facility", id)
}

/// `facility`, read shared (`Overlay::get_shared`): for the many entries that only read
/// it.
fn shared_facility(
    state: &Overlay<'_>,
    field: &str,
    id: &str,
) -> Result<Arc<FacilityRecord>, AdmitError> {
    state
        .get_shared(&facility_key(id))?
        .ok_or_else(|| not_registered(field, "facility", id))
}

fn put_facility(state: &mut Overlay<'_>, f: &FacilityRecord) {
    state.put_encoded(facility_key(f.id()), f);
}

/// What an entry changed in the projections: a facility's records, or one of its
/// monthly reports, which travels with its figures so that readers keeping a model in
/// memory (the audit) never read it back by key. The by-facility postings and the
/// change log are built from these.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Touch<Id = String> {
    Facility(Id),
    Report(ReportFigures<Id>),
}

impl<Id: std::borrow::Borrow<str>> Touch<Id> {
    pub fn facility(&self) -> &str {
        match self {
            Touch::Facility(f) => f.borrow(),
            Touch::Report(report) => report.facility_id.borrow(),
        }
    }
}

/// Everything an entry touched.
pub type Touched = Vec<Touch>;

/// The owner an entry lists terms for and the terms, each once, if it lists any: a
/// `lot.serials` entry's lot and serials, whose first listings admission looks up
/// (`lot_serials`). A replay from the first leaf works those out ahead from this alone.
pub fn listed_terms(body: &b::Body) -> Option<(&str, Vec<&str>)> {
    match body {
        b::Body::LotSerials(r) => Some((&r.lot_id, r.serials.to_strs())),
        _ => None,
    }
}

/// Judges a domain entry and records its effects. Returns what it touched, each once.
pub fn apply(
    state: &mut Overlay<'_>,
    index: u64,
    signer: &Signer<'_>,
    body: &b::Body,
) -> Result<Touched, AdmitError> {
    use b::Body;
    let about = match body {
        Body::FacilityRegister(r) => facility_register(state, index, signer, r.clone())?,
        Body::FacilityStatus(r) => facility_status(state, index, signer, r.clone())?,
        Body::FacilityTransfer(r) => facility_transfer(state, index, signer, r.clone())?,
        Body::Procurement(r) => procurement(state, index, signer, r.clone())?,
        Body::LotSerials(r) => lot_serials(state, index, signer, r)?,
        Body::Deployment(r) => deployment(state, index, signer, r.clone())?,
        Body::LotTransfer(r) => lot_transfer(state, index, signer, r.clone())?,
        Body::PermitIssue(r) => permit_issue(state, index, signer, r.clone())?,
        Body::PermitRevoke(r) => permit_revoke(state, index, r.clone())?,
        Body::SubsidyGrant(r) => subsidy_grant(state, index, signer, r.clone())?,
        Body::SubsidyDisburse(r) => subsidy_disburse(state, index, signer, r.clone())?,
        Body::LoanIssue(r) => loan_issue(state, index, signer, r.clone())?,
        Body::PowerReport(r) => report(state, Some(signer), ReportBody::Power(r))?,
        Body::OccupancyReport(r) => report(state, Some(signer), ReportBody::Occupancy(r))?,
        Body::MeterReading(r) => report(state, None, ReportBody::Meter(r))?,
        Body::InspectionReport(r) => inspection(state, index, r.clone())?,
        Body::FindingResponse(r) => finding_note(
            state,
            index,
            signer,
            &r.finding_id,
            FindingNoteKind::Response,
            r.text.clone(),
        )?,
        Body::FindingResolve(r) => finding_note(
            state,
            index,
            signer,
            &r.finding_id,
            FindingNoteKind::Resolve(r.outcome),
            r.text.clone(),
        )?,
        Body::LedgerGenesis(_) | Body::OrgRegister(_) | Body::KeyGrant(_) | Body::KeyRevoke(_) => {
            return Err(
                Rejection::invalid("/entry/kind", "a registry kind has no domain rules").into(),
            );
        }
    };
    // A transfer can name one facility twice; each touch is recorded once.
    let mut once = Touched::with_capacity(about.len());
    for t in about {
        if !once.contains(&t) {
            once.push(t);
        }
    }
    Ok(once)
}

fn facility_register(
    state: &mut Overlay<'_>,
    index: u64,
    signer: &Signer<'_>,
    r: b::FacilityRegister,
) -> Result<Touched, AdmitError> {
    fresh(
        state,
        &facility_key(&r.facility_id),
        "facility_id",
        "facility",
        &r.facility_id,
    )?;
    let facility_id = r.facility_id.clone();
    let f = FacilityRecord::registered(r, index, signer.org_id);
    put_facility(state, &f);
    Ok(vec![Touch::Facility(facility_id)])
}

fn facility_status(
    state: &mut Overlay<'_>,
    index: u64,
    signer: &Signer<'_>,
    r: b::FacilityStatus,
) -> Result<Touched, AdmitError> {
    let mut f = facility(state, "facility_id", &r.facility_id)?;
    // A regulator records what it finds without operating the facility (PROTOCOL §7).
    if !signer.roles.contains(Role::Regulator) {
        operates(&f, signer, "facility_id")?;
    }
    f.statuses.push(StatusEvent {
        status: r.status,
        effective: r.effective,
        index,
    });
    put_facility(state, &f);
    Ok(vec![Touch::Facility(r.facility_id)])
}

fn facility_transfer(
    state: &mut Overlay<'_>,
    index: u64,
    signer: &Signer<'_>,
    r: b::FacilityTransfer,
) -> Result<Touched, AdmitError> {
    let mut f = facility(state, "facility_id", &r.facility_id)?;
    org_exists(state, "to_org", &r.to_org)?;
    operates(&f, signer, "facility_id")?;
    // The lots procured for it follow: a lot belongs to its facility's operator.
    f.operator = r.to_org.clone();
    f.operators.push(OperatorSpell {
        org_id: r.to_org,
        index,
        date: Some(r.date),
        price_minor: Some(r.price_minor),
        currency: Some(r.currency),
    });
    put_facility(state, &f);
    Ok(vec![Touch::Facility(r.facility_id)])
}

fn procurement(
    state: &mut Overlay<'_>,
    index: u64,
    signer: &Signer<'_>,
    r: b::Procurement,
) -> Result<Touched, AdmitError> {
    let mut f = facility(state, "facility_id", &r.facility_id)?;
    operates(&f, signer, "facility_id")?;
    fresh(state, &lot_key(&r.lot_id), "lot_id", "lot", &r.lot_id)?;
    let (lot_id, facility_id) = (r.lot_id.clone(), r.facility_id.clone());
    let lot = LotRecord {
        undeployed: r.quantity,
        procured: r,
        procured_at: index,
        deployed: Vec::new(),
        moves: Vec::new(),
        serials: 0,
        serial_entries: Vec::new(),
    };
    state.put_encoded(lot_key(&lot_id), &lot);
    f.lots.push(lot_id);
    put_facility(state, &f);
    Ok(vec![Touch::Facility(facility_id)])
}

/// The lot (422 if unknown) and the facility it was procured for, whose operator owns it.
fn lot_and_home(
    state: &Overlay<'_>,
    lot_id: &str,
) -> Result<(LotRecord, FacilityRecord), AdmitError> {
    let lot: LotRecord = existing(state, &lot_key(lot_id), "lot_id", "lot", lot_id)?;
    let home = facility(state, "lot_id", &lot.procured.facility_id)?;
    Ok((lot, home))
}

fn owns(home: &FacilityRecord, lot_id: &str, signer: &Signer<'_>) -> Result<(), AdmitError> {
    if home.operator != signer.org_id {
        return Err(Rejection::forbidden(
            path("lot_id"),
            format!(
                "lot {lot_id:?} belongs to {:?}, the operator of facility {:?}, not to {:?}",
                home.operator,
                home.id(),
                signer.org_id
            ),
        )
        .into());
    }
    Ok(())
}

fn lot_serials(
    state: &mut Overlay<'_>,
    index: u64,
    signer: &Signer<'_>,
    r: &b::LotSerials,
) -> Result<Touched, AdmitError> {
    let (mut lot, home) = lot_and_home(state, &r.lot_id)?;
    owns(&home, &r.lot_id, signer)?;
    // Each serial's first listing, all at once, in memory: most serials are new, and
    // that costs no store traffic. The entry lists each serial once (`Serials`).
    let serials = r.serials.to_strs();
    let found = state.first_listings_or_claim(&serials, index)?;
    for (&serial, first) in serials.iter().zip(found) {
        let Some(first) = first else {
            continue; // first listed here, and now recorded so
        };
        assert!(
            first < index,
            "a serial's first listing is an earlier entry: an entry lists each serial once"
        );
        let key = serial_key(serial);
        let mut uses: Vec<SerialUse> = match state.get_decoded(&key)? {
            Some(uses) => uses,
            None => {
                let listing = state.listing(first)?.ok_or_else(|| DerivedError::Decode {
                    key: format!("listing of entry {first}"),
                    reason: format!("serial {serial:?} was first listed there, which is missing"),
                })?;
                vec![SerialUse {
                    lot_id: listing.owner.clone(),
                    index: first,
                }]
            }
        };
        uses.push(SerialUse {
            lot_id: r.lot_id.clone(),
            index,
        });
        if uses.iter().any(|u| u.lot_id != r.lot_id) {
            state.put(shared_serial_key(serial), Vec::new());
        }
        state.put_encoded(key, &uses);
    }
    // At most 1,000 serials an entry, a few billion entries: far below 2^64.
    lot.serials = lot.serials.saturating_add(serials.len() as u64);
    lot.serial_entries.push(index);
    state.put_listing(
        index,
        &ListingRef {
            owner: &r.lot_id,
            terms: &serials,
        },
    );
    state.put_encoded(lot_key(&r.lot_id), &lot);
    Ok(vec![Touch::Facility(lot.procured.facility_id)])
}

/// GPUs arriving at a facility as a signed move: quantities are at most 2^53 − 1
/// (PROTOCOL §2), so they fit i64.
fn arriving(quantity: u64) -> i64 {
    i64::try_from(quantity).unwrap_or_else(|_| unreachable!("quantity {quantity} is above 2^53"))
}

/// What is left of `stock` once `quantity` is taken, which ingest checked is there.
fn taken(stock: u64, quantity: u64) -> u64 {
    stock
        .checked_sub(quantity)
        .unwrap_or_else(|| unreachable!("ingest checked {quantity} of {stock} are there"))
}

fn too_many(available: u64, asked: u64, from: &str) -> AdmitError {
    Rejection::conflict(
        path("quantity"),
        format!("{asked} GPUs asked but only {available} are {from}"),
    )
    .into()
}

fn deployment(
    state: &mut Overlay<'_>,
    index: u64,
    signer: &Signer<'_>,
    r: b::Deployment,
) -> Result<Touched, AdmitError> {
    let (mut lot, home) = lot_and_home(state, &r.lot_id)?;
    let mut target = facility(state, "facility_id", &r.facility_id)?;
    owns(&home, &r.lot_id, signer)?;
    operates(&target, signer, "facility_id")?;
    if r.quantity > lot.undeployed {
        return Err(too_many(
            lot.undeployed,
            r.quantity,
            "undeployed in the lot",
        ));
    }
    lot.undeployed = taken(lot.undeployed, r.quantity);
    lot.deploy(&r.facility_id, r.quantity);
    lot.moves.push(LotMove {
        kind: LotMoveKind::Deployment {
            facility_id: r.facility_id.clone(),
        },
        quantity: r.quantity,
        date: r.date.clone(),
        index,
    });
    target.gpu_moves.push(GpuMove {
        lot_id: r.lot_id.clone(),
        date: r.date,
        delta: arriving(r.quantity),
        index,
    });
    state.put_encoded(lot_key(&r.lot_id), &lot);
    put_facility(state, &target);
    Ok(vec![
        Touch::Facility(r.facility_id),
        Touch::Facility(lot.procured.facility_id),
    ])
}

fn lot_transfer(
    state: &mut Overlay<'_>,
    index: u64,
    signer: &Signer<'_>,
    r: b::LotTransfer,
) -> Result<Touched, AdmitError> {
    let (mut lot, home) = lot_and_home(state, &r.lot_id)?;
    let from = match &r.from_facility {
        Some(id) => Some(facility(state, "from_facility", id)?),
        None => None,
    };
    if let Some(to_org) = &r.to_org {
        org_exists(state, "to_org", to_org)?;
    }
    let to = match &r.to_facility {
        Some(id) => Some(facility(state, "to_facility", id)?),
        None => None,
    };
    owns(&home, &r.lot_id, signer)?;
    if let Some(f) = &from {
        operates(f, signer, "from_facility")?;
    }
    if let Some(f) = &to {
        // GPUs move only between facilities of the same operator (PROTOCOL §7).
        operates(f, signer, "to_facility")?;
    }
    let mut touched_to = None;
    match &r.from_facility {
        Some(id) => {
            let there = lot.deployed_at(id);
            if r.quantity > there {
                return Err(too_many(
                    there,
                    r.quantity,
                    &format!("of this lot deployed at {id:?}"),
                ));
            }
            lot.withdraw(id, r.quantity);
        }
        None => {
            if r.quantity > lot.undeployed {
                return Err(too_many(
                    lot.undeployed,
                    r.quantity,
                    "undeployed in the lot",
                ));
            }
            lot.undeployed = taken(lot.undeployed, r.quantity);
        }
    }
    if let Some(mut f) = from {
        f.gpu_moves.push(GpuMove {
            lot_id: r.lot_id.clone(),
            date: r.date.clone(),
            delta: arriving(r.quantity)
                .checked_neg()
                .unwrap_or_else(|| unreachable!("a quantity below 2^53 negates")),
            index,
        });
        put_facility(state, &f);
    }
    if let Some(to_id) = &r.to_facility {
        touched_to = Some(to_id.clone());
        lot.deploy(to_id, r.quantity);
        // Re-read: the target may be the facility just written above.
        let mut f = facility(state, "to_facility", to_id)?;
        f.gpu_moves.push(GpuMove {
            lot_id: r.lot_id.clone(),
            date: r.date.clone(),
            delta: arriving(r.quantity),
            index,
        });
        put_facility(state, &f);
    }
    lot.moves.push(LotMove {
        kind: LotMoveKind::Transfer {
            from_facility: r.from_facility.clone(),
            to_org: r.to_org,
            to_facility: r.to_facility,
            price_minor: r.price_minor,
            currency: r.currency,
        },
        quantity: r.quantity,
        date: r.date,
        index,
    });
    let mut about = vec![Touch::Facility(lot.procured.facility_id.clone())];
    about.extend(r.from_facility.map(Touch::Facility));
    about.extend(touched_to.map(Touch::Facility));
    state.put_encoded(lot_key(&r.lot_id), &lot);
    Ok(about)
}

fn permit_issue(
    state: &mut Overlay<'_>,
    index: u64,
    signer: &Signer<'_>,
    r: b::PermitIssue,
) -> Result<Touched, AdmitError> {
    let mut f = facility(state, "facility_id", &r.facility_id)?;
    fresh(
        state,
        &permit_key(&r.permit_id),
        "permit_id",
        "permit",
        &r.permit_id,
    )?;
    let (permit_id, facility_id) = (r.permit_id.clone(), r.facility_id.clone());
    let permit = PermitRecord {
        issued: r,
        issuer_org: signer.org_id.to_string(),
        issued_at: index,
        revocations: Vec::new(),
    };
    state.put_encoded(permit_key(&permit_id), &permit);
    f.permits.push(permit_id);
    put_facility(state, &f);
    Ok(vec![Touch::Facility(facility_id)])
}

fn permit_revoke(
    state: &mut Overlay<'_>,
    index: u64,
    r: b::PermitRevoke,
) -> Result<Touched, AdmitError> {
    let mut permit: PermitRecord = existing(
        state,
        &permit_key(&r.permit_id),
        "permit_id",
        "permit",
        &r.permit_id,
    )?;
    permit.revocations.push(Revocation {
        effective: r.effective,
        reason: r.reason,
        index,
    });
    let about = vec![Touch::Facility(permit.issued.facility_id.clone())];
    state.put_encoded(permit_key(&r.permit_id), &permit);
    Ok(about)
}

fn subsidy_grant(
    state: &mut Overlay<'_>,
    index: u64,
    signer: &Signer<'_>,
    r: b::SubsidyGrant,
) -> Result<Touched, AdmitError> {
    let mut f = facility(state, "facility_id", &r.facility_id)?;
    org_exists(state, "recipient_org", &r.recipient_org)?;
    fresh(
        state,
        &subsidy_key(&r.subsidy_id),
        "subsidy_id",
        "subsidy",
        &r.subsidy_id,
    )?;
    let (subsidy_id, facility_id) = (r.subsidy_id.clone(), r.facility_id.clone());
    let subsidy = SubsidyRecord {
        granted: r,
        grantor_org: signer.org_id.to_string(),
        granted_at: index,
        disbursements: Vec::new(),
    };
    state.put_encoded(subsidy_key(&subsidy_id), &subsidy);
    f.subsidies.push(subsidy_id);
    put_facility(state, &f);
    Ok(vec![Touch::Facility(facility_id)])
}

fn subsidy_disburse(
    state: &mut Overlay<'_>,
    index: u64,
    signer: &Signer<'_>,
    r: b::SubsidyDisburse,
) -> Result<Touched, AdmitError> {
    let mut subsidy: SubsidyRecord = existing(
        state,
        &subsidy_key(&r.subsidy_id),
        "subsidy_id",
        "subsidy",
        &r.subsidy_id,
    )?;
    if subsidy.grantor_org != signer.org_id {
        return Err(Rejection::forbidden(
            path("subsidy_id"),
            format!(
                "subsidy {:?} was granted by {:?}; only that grantor disburses it",
                r.subsidy_id, subsidy.grantor_org
            ),
        )
        .into());
    }
    subsidy.disbursements.push(Disbursement {
        amount_minor: r.amount_minor,
        currency: r.currency,
        date: r.date,
        index,
    });
    let about = vec![Touch::Facility(subsidy.granted.facility_id.clone())];
    state.put_encoded(subsidy_key(&r.subsidy_id), &subsidy);
    Ok(about)
}

fn loan_issue(
    state: &mut Overlay<'_>,
    index: u64,
    signer: &Signer<'_>,
    r: b::LoanIssue,
) -> Result<Touched, AdmitError> {
    let mut f = facility(state, "facility_id", &r.facility_id)?;
    org_exists(state, "borrower_org", &r.borrower_org)?;
    fresh(state, &loan_key(&r.loan_id), "loan_id", "loan", &r.loan_id)?;
    let mut collateral = Vec::with_capacity(r.collateral.len());
    for item in &r.collateral {
        collateral.push(Collateral {
            item: item.clone(),
            is_lot: state.contains(&lot_key(item))?,
        });
        let key = collateral_key(item);
        let mut pledges: Vec<Pledge> = state.get_decoded(&key)?.unwrap_or_default();
        pledges.push(Pledge {
            loan_id: r.loan_id.clone(),
            facility_id: r.facility_id.clone(),
            date: r.date.clone(),
            index,
        });
        if pledges.iter().any(|p| p.loan_id != r.loan_id) {
            state.put(shared_collateral_key(item), Vec::new());
        }
        state.put_encoded(key, &pledges);
    }
    let loan = LoanRecord {
        loan_id: r.loan_id.clone(),
        facility_id: r.facility_id.clone(),
        borrower_org: r.borrower_org,
        lender_org: signer.org_id.to_string(),
        amount_minor: r.amount_minor,
        currency: r.currency,
        state_backed: r.state_backed,
        date: r.date,
        collateral,
        issued_at: index,
    };
    state.put_encoded(loan_key(&r.loan_id), &loan);
    f.loans.push(r.loan_id);
    put_facility(state, &f);
    Ok(vec![Touch::Facility(r.facility_id)])
}

/// A monthly report. Derived state keeps it only as its figures in the change log
/// (`ledger::layout`), where the latest per facility, series and period is the one that
/// counts (PROTOCOL §6.5): readers take it from there, so admission writes no record of
/// its own, and reads none but the facility's. `operator` is the signer when the series
/// is the operator's own (power, occupancy), which requires operating the facility.
fn report(
    state: &mut Overlay<'_>,
    operator: Option<&Signer<'_>>,
    body: ReportBody<'_>,
) -> Result<Touched, AdmitError> {
    // Read shared: most entries are reports, and their facility changes far less often.
    let f = shared_facility(state, "facility_id", body.facility_id())?;
    if let Some(signer) = operator {
        operates(&f, signer, "facility_id")?;
    }
    let figures = ReportFigures::of(&body)
        .map_err(|e| Rejection::invalid(format!("/entry/body/{}", e.field()), e.to_string()))?;
    Ok(vec![Touch::Report(figures)])
}

fn inspection(
    state: &mut Overlay<'_>,
    index: u64,
    r: b::InspectionReport,
) -> Result<Touched, AdmitError> {
    let mut f = facility(state, "facility_id", &r.facility_id)?;
    f.inspections.push(Inspection {
        date: r.date,
        gpus_counted: r.gpus_counted,
        gpus_powered: r.gpus_powered,
        observed_status: r.observed_status,
        document_b3: r.document_b3,
        index,
    });
    put_facility(state, &f);
    Ok(vec![Touch::Facility(r.facility_id)])
}

/// Findings are computed by the audit, not registered, so a response or resolution
/// names a finding id that ingest cannot look up; it is kept for the audit to attach.
fn finding_note(
    state: &mut Overlay<'_>,
    index: u64,
    signer: &Signer<'_>,
    finding_id: &str,
    kind: FindingNoteKind,
    text: String,
) -> Result<Touched, AdmitError> {
    let key = finding_key(finding_id);
    let mut notes: Vec<FindingNote> = state.get_decoded(&key)?.unwrap_or_default();
    notes.push(FindingNote {
        kind,
        org_id: signer.org_id.to_string(),
        text,
        index,
    });
    state.put_encoded(key, &notes);
    Ok(Vec::new())
}
