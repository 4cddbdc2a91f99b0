//! Organisations, keys and roles (PROTOCOL §6): who may sign what. Holds the derived records
//! for signers and organisations and the rules of the four authority kinds. Pure logic
//! over an `Overlay`; no I/O of its own.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::bodies::{self as b, Body};
use crate::entry::{Role, Roles};
use crate::keys::{PublicKey, parse_public_hex};
use crate::reject::Rejection;
use crate::store::derived::{DerivedError, Overlay, family, key};

/// The implicit organisation of the genesis key.
pub const AUTHORITY_ORG: &str = "authority";

/// A key's life in the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerRecord {
    pub org_id: String,
    /// Index of the entry that granted the key (0 for the genesis key).
    pub granted_at: u64,
    /// Index of the `key.revoke` entry, once revoked.
    pub revoked_at: Option<u64>,
    /// The `seq` its next entry must carry.
    pub next_seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRecord {
    pub name: String,
    pub roles: Roles,
    pub province: Option<String>,
    pub registration_no: Option<String>,
    pub parent_org: Option<String>,
    pub registered_at: u64,
}

/// What the genesis entry fixed for the life of the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisRecord {
    pub origin: String,
    pub name: String,
    pub checkpoint_key: PublicKey,
    pub authority_key: PublicKey,
}

pub const GENESIS_KEY: &[u8] = b"mgenesis";

pub fn signer_key(pk: &PublicKey) -> Vec<u8> {
    key(family::SIGNER, &[pk])
}

pub fn org_key(org_id: &str) -> Vec<u8> {
    key(family::ORG, &[org_id.as_bytes()])
}

pub fn signer(
    state: &Overlay<'_>,
    pk: &PublicKey,
) -> Result<Option<Arc<SignerRecord>>, DerivedError> {
    state.get_shared(&signer_key(pk))
}

pub fn org(state: &Overlay<'_>, org_id: &str) -> Result<Option<Arc<OrgRecord>>, DerivedError> {
    state.get_shared(&org_key(org_id))
}

/// Either a refusal or a failure of the store underneath; ingest keeps them apart
/// because only the first is the submitter's doing.
#[derive(Debug)]
pub enum AdmitError {
    Rejected(Rejection),
    Store(DerivedError),
}

impl From<Rejection> for AdmitError {
    fn from(r: Rejection) -> Self {
        AdmitError::Rejected(r)
    }
}

impl From<DerivedError> for AdmitError {
    fn from(e: DerivedError) -> Self {
        AdmitError::Store(e)
    }
}

/// Entry 0: fixes the origin and the checkpoint key and makes its signer the authority.
pub fn apply_genesis(
    state: &mut Overlay<'_>,
    signer_pk: &PublicKey,
    body: &b::LedgerGenesis,
) -> Result<GenesisRecord, AdmitError> {
    let checkpoint_key = parse_public_hex(&body.checkpoint_key).ok_or_else(|| {
        Rejection::invalid(
            "/entry/body/checkpoint_key",
            "must be 64 lowercase hex characters",
        )
    })?;
    // The log's key signs checkpoints, never entries (PROTOCOL §6): an authority key that
    // signs checkpoints too would be an entry key that is the log's.
    if checkpoint_key == *signer_pk {
        return Err(Rejection::conflict(
            "/entry/body/checkpoint_key",
            "the checkpoint key is the authority's key, which signs this entry: the log's \
             key signs checkpoints and is never an entry key; give the ledger its own log key",
        )
        .into());
    }
    let record = GenesisRecord {
        origin: body.origin.clone(),
        name: body.name.clone(),
        checkpoint_key,
        authority_key: *signer_pk,
    };
    state.put_encoded(GENESIS_KEY.to_vec(), &record);
    state.put_encoded(
        org_key(AUTHORITY_ORG),
        &OrgRecord {
            name: record.name.clone(),
            roles: [Role::Authority].into_iter().collect(),
            province: None,
            registration_no: None,
            parent_org: None,
            registered_at: 0,
        },
    );
    state.put_encoded(
        signer_key(signer_pk),
        &SignerRecord {
            org_id: AUTHORITY_ORG.into(),
            granted_at: 0,
            revoked_at: None,
            next_seq: 1,
        },
    );
    Ok(record)
}

/// Ledger-dependent checks and effects of `org.register`, `key.grant` and `key.revoke`.
/// Refusals follow PROTOCOL §6's order: 422 (missing reference) before 409 (duplicate).
pub fn apply(state: &mut Overlay<'_>, index: u64, body: &Body) -> Result<(), AdmitError> {
    match body {
        Body::OrgRegister(body) => {
            let org_id = body.org_id.as_str();
            let parent_org = body.parent_org.clone();
            if let Some(parent) = &parent_org
                && org(state, parent)?.is_none()
            {
                return Err(Rejection::unknown_reference(
                    "/entry/body/parent_org",
                    format!("organisation {parent:?} is not registered"),
                )
                .into());
            }
            if state.contains(&org_key(org_id))? {
                return Err(Rejection::conflict(
                    "/entry/body/org_id",
                    format!("organisation {org_id:?} is already registered"),
                )
                .into());
            }
            // The schema and the body's type require a list of known roles; anything else
            // is refused by name, never dropped.
            let roles = body
                .roles
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    Role::parse(item).ok_or_else(|| {
                        Rejection::invalid(format!("/entry/body/roles/{i}"), "is not a role")
                    })
                })
                .collect::<Result<Roles, Rejection>>()?;
            let record = OrgRecord {
                name: body.name.clone(),
                roles,
                province: body.province.clone(),
                registration_no: body.registration_no.clone(),
                parent_org,
                registered_at: index,
            };
            state.put_encoded(org_key(org_id), &record);
        }
        Body::KeyGrant(body) => {
            let org_id = body.org_id.as_str();
            let pk = parse_key_field(&body.public_key)?;
            if org(state, org_id)?.is_none() {
                return Err(Rejection::unknown_reference(
                    "/entry/body/org_id",
                    format!("organisation {org_id:?} is not registered"),
                )
                .into());
            }
            // The log's key signs checkpoints, never entries (PROTOCOL §6).
            let genesis: Option<GenesisRecord> = state.get_decoded(GENESIS_KEY)?;
            if genesis.is_some_and(|g| g.checkpoint_key == pk) {
                return Err(Rejection::conflict(
                    "/entry/body/public_key",
                    "key is already registered: it is this ledger's checkpoint key (genesis, \
                     entry 0), which signs checkpoints and is never an entry key; grant a \
                     key of its own",
                )
                .into());
            }
            // A revoked key stays registered forever: granting it again would let an old,
            // possibly leaked key sign anew, and its seq counter is its own for life.
            if let Some(existing) = signer(state, &pk)? {
                return Err(Rejection::conflict(
                    "/entry/body/public_key",
                    format!(
                        "key is already registered (to {:?} at entry {}{}); a key is granted once",
                        existing.org_id,
                        existing.granted_at,
                        if existing.revoked_at.is_some() {
                            ", since revoked"
                        } else {
                            ""
                        }
                    ),
                )
                .into());
            }
            state.put_encoded(
                signer_key(&pk),
                &SignerRecord {
                    org_id: org_id.to_string(),
                    granted_at: index,
                    revoked_at: None,
                    next_seq: 1,
                },
            );
        }
        Body::KeyRevoke(body) => {
            let pk = parse_key_field(&body.public_key)?;
            let Some(record) = signer(state, &pk)? else {
                return Err(Rejection::unknown_reference(
                    "/entry/body/public_key",
                    "no such key is registered",
                )
                .into());
            };
            // Revoking twice changes nothing: the first revocation stands.
            if record.revoked_at.is_none() {
                let revoked = SignerRecord {
                    revoked_at: Some(index),
                    ..SignerRecord::clone(&record)
                };
                state.put_record(signer_key(&pk), revoked);
            }
        }
        _ => {
            return Err(
                Rejection::invalid("/entry/kind", "the body is not a registry kind's").into(),
            );
        }
    }
    Ok(())
}

fn parse_key_field(public_key: &str) -> Result<PublicKey, Rejection> {
    parse_public_hex(public_key).ok_or_else(|| {
        Rejection::invalid(
            "/entry/body/public_key",
            "must be 64 lowercase hex characters",
        )
    })
}
