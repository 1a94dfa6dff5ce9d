//! Containers, block blobs and blob leases, with the outcomes of Azure's "Lease Blob"
//! documentation (lease operations, and writes by lease state).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use samza_azure_coordinator::storage::{BlobRef, Change, Document, ETag, LeaseDuration, LeaseId};
use tokio::time::Instant;

use super::clock::Clock;
use super::{refuse, Answer, Op, Refusal, Served};

/// A blob's lease, in the states Azure reports (`x-ms-lease-state`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lease {
    Available,
    Leased {
        id: LeaseId,
        duration: LeaseDuration,
        /// `None` for an infinite lease.
        expires: Option<Instant>,
    },
    Breaking {
        id: LeaseId,
        duration: LeaseDuration,
        broken_at: Instant,
    },
    Broken {
        id: LeaseId,
    },
    Expired {
        id: LeaseId,
        duration: LeaseDuration,
        /// Written (without a lease) since it expired: then it can no longer be renewed.
        modified: bool,
    },
}

impl Lease {
    /// The state at `now`: leases expire and breaks complete on the virtual clock.
    fn at(&mut self, now: Instant) {
        match *self {
            Lease::Leased {
                id,
                duration,
                expires: Some(t),
            } if now >= t => {
                *self = Lease::Expired {
                    id,
                    duration,
                    modified: false,
                }
            }
            Lease::Breaking { id, broken_at, .. } if now >= broken_at => {
                *self = Lease::Broken { id }
            }
            _ => {}
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Lease::Available => "available",
            Lease::Leased { .. } => "leased",
            Lease::Breaking { .. } => "breaking",
            Lease::Broken { .. } => "broken",
            Lease::Expired { .. } => "expired",
        }
    }
}

#[derive(Clone, Debug)]
struct Blob {
    body: Bytes,
    etag: ETag,
    lease: Lease,
}

#[derive(Default)]
pub(crate) struct Blobs {
    containers: BTreeMap<String, BTreeMap<String, Blob>>,
}

fn container_not_found(blob: &BlobRef) -> Refusal {
    refuse(
        404,
        "ContainerNotFound",
        format!(
            "The specified container does not exist: '{}'",
            blob.container()
        ),
    )
}

fn blob_not_found(blob: &BlobRef) -> Refusal {
    refuse(
        404,
        "BlobNotFound",
        format!("The specified blob does not exist: '{blob}'"),
    )
}

fn expires(duration: LeaseDuration, now: Instant) -> Option<Instant> {
    match duration {
        LeaseDuration::Seconds(s) => Some(now + Duration::from_secs(u64::from(s))),
        LeaseDuration::Infinite => None,
    }
}

/// Whole seconds, rounded up, as `x-ms-lease-time` reports the wait after a break.
fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

impl Blobs {
    fn blob_mut(&mut self, blob: &BlobRef, now: Instant) -> Served<&mut Blob> {
        let container = self
            .containers
            .get_mut(blob.container())
            .ok_or_else(|| container_not_found(blob))?;
        let b = container
            .get_mut(blob.blob())
            .ok_or_else(|| blob_not_found(blob))?;
        b.lease.at(now);
        Ok(b)
    }

    pub fn apply(&mut self, op: &Op, now: Instant, clock: &mut Clock) -> Served<Answer> {
        match op {
            Op::EnsureContainer { container } => {
                if self.containers.contains_key(container) {
                    // The adapter reports 409 ContainerAlreadyExists as "not created".
                    Ok(Answer::Bool(false))
                } else {
                    self.containers.insert(container.clone(), BTreeMap::new());
                    Ok(Answer::Bool(true))
                }
            }
            Op::AcquireLease {
                blob,
                duration,
                proposed,
            } => {
                if let LeaseDuration::Seconds(s) = duration {
                    if !(15..=60).contains(s) {
                        return Err(refuse(
                            400,
                            "InvalidHeaderValue",
                            format!(
                                "lease duration on {blob} must be 15-60 s or infinite, found {s} s"
                            ),
                        ));
                    }
                }
                let b = self.blob_mut(blob, now)?;
                let id = match (&b.lease, proposed) {
                    (Lease::Leased { id, .. }, Some(p)) if id == p => *p,
                    (Lease::Leased { id, .. }, _) => {
                        return Err(refuse(
                            409,
                            "LeaseAlreadyPresent",
                            format!("There is already a lease present on {blob} (lease {id})"),
                        ))
                    }
                    (Lease::Breaking { .. }, _) => {
                        return Err(refuse(
                            409,
                            "LeaseIsBreakingAndCannotBeAcquired",
                            format!("There is a lease on {blob} and it is breaking; it cannot be acquired until broken"),
                        ))
                    }
                    (_, Some(p)) => *p,
                    (_, None) => clock.lease_id(),
                };
                b.lease = Lease::Leased {
                    id,
                    duration: *duration,
                    expires: expires(*duration, now),
                };
                Ok(Answer::Lease(id))
            }
            Op::RenewLease { blob, lease } => {
                let b = self.blob_mut(blob, now)?;
                match b.lease.clone() {
                    Lease::Leased { id, duration, .. }
                    | Lease::Expired {
                        id,
                        duration,
                        modified: false,
                    } if id == *lease => {
                        b.lease = Lease::Leased {
                            id,
                            duration,
                            expires: expires(duration, now),
                        };
                        Ok(Answer::Unit)
                    }
                    other => Err(lease_op_refusal(blob, &other, *lease, "renewed")),
                }
            }
            Op::ReleaseLease { blob, lease } => {
                let b = self.blob_mut(blob, now)?;
                match &b.lease {
                    Lease::Leased { id, .. }
                    | Lease::Breaking { id, .. }
                    | Lease::Broken { id }
                    | Lease::Expired { id, .. }
                        if id == lease =>
                    {
                        b.lease = Lease::Available;
                        Ok(Answer::Unit)
                    }
                    other => Err(lease_op_refusal(blob, other, *lease, "released")),
                }
            }
            Op::BreakLease { blob, period } => {
                // The SDK sends whole seconds.
                let period = Duration::from_secs(period.as_secs());
                let b = self.blob_mut(blob, now)?;
                let (id, duration, broken_at) = match &b.lease {
                    Lease::Leased {
                        id,
                        duration,
                        expires,
                    } => {
                        // The break period applies only if shorter than what is left.
                        let left = expires.map_or(period, |t| t.saturating_duration_since(now));
                        (*id, *duration, now + period.min(left))
                    }
                    Lease::Breaking {
                        id,
                        duration,
                        broken_at,
                    } => (*id, *duration, (*broken_at).min(now + period)),
                    Lease::Broken { .. } => return Ok(Answer::Duration(Duration::ZERO)),
                    Lease::Available | Lease::Expired { .. } => {
                        return Err(refuse(
                            409,
                            "LeaseNotPresentWithLeaseOperation",
                            format!(
                                "There is currently no lease on {blob} to break (lease {})",
                                b.lease.name()
                            ),
                        ))
                    }
                };
                b.lease = if broken_at <= now {
                    Lease::Broken { id }
                } else {
                    Lease::Breaking {
                        id,
                        duration,
                        broken_at,
                    }
                };
                Ok(Answer::Duration(whole_seconds(
                    broken_at.saturating_duration_since(now),
                )))
            }
            Op::ChangeLease {
                blob,
                lease,
                proposed,
            } => {
                let b = self.blob_mut(blob, now)?;
                match &mut b.lease {
                    // Changing to the id it already has succeeds: a retry after a lost answer.
                    Lease::Leased { id, .. } if id == lease || id == proposed => {
                        *id = *proposed;
                        Ok(Answer::Lease(*proposed))
                    }
                    Lease::Breaking { id, .. } if id == lease || id == proposed => Err(refuse(
                        409,
                        "LeaseIsBreakingAndCannotBeChanged",
                        format!("The lease on {blob} is breaking and cannot be changed"),
                    )),
                    other => Err(lease_op_refusal(blob, other, *lease, "changed")),
                }
            }
            Op::CreateDocument { blob, body } => {
                self.put(blob, body, Precondition::NoneMatchAny, None, now, clock)
            }
            Op::ReplaceDocument {
                blob,
                body,
                if_match,
                lease,
            } => {
                let pre = if_match
                    .clone()
                    .map_or(Precondition::None, Precondition::Match);
                self.put(blob, body, pre, *lease, now, clock)
            }
            Op::DeleteDocument {
                blob,
                if_match,
                lease,
            } => {
                let b = self.blob_mut(blob, now)?;
                write_lease_check(blob, &b.lease, *lease)?;
                if let Some(want) = if_match {
                    if *want != b.etag {
                        return Err(condition_not_met(blob, want, &b.etag));
                    }
                }
                if let Some(c) = self.containers.get_mut(blob.container()) {
                    c.remove(blob.blob());
                }
                Ok(Answer::Unit)
            }
            Op::ReadDocument { blob } => {
                let b = self.blob_mut(blob, now)?;
                Ok(Answer::Document(Document {
                    body: b.body.clone(),
                    etag: b.etag.clone(),
                }))
            }
            Op::ReadDocumentIfChanged { blob, known } => {
                let b = self.blob_mut(blob, now)?;
                // 304 Not Modified when the ETag still matches.
                Ok(Answer::MaybeDocument((b.etag != *known).then(|| {
                    Document {
                        body: b.body.clone(),
                        etag: b.etag.clone(),
                    }
                })))
            }
            Op::CheckDocument { blob, known } => {
                let b = self.blob_mut(blob, now)?;
                Ok(Answer::Change(if b.etag == *known {
                    Change::Unchanged
                } else {
                    Change::Changed(b.etag.clone())
                }))
            }
            other => Err(refuse(
                400,
                "InvalidInput",
                format!("not a blob operation: {}", other.describe()),
            )),
        }
    }

    /// Put Blob. The lease is checked before the conditional headers: a create on a leased
    /// blob is 412 `LeaseIdMissing`, not 409 `BlobAlreadyExists`.
    fn put(
        &mut self,
        blob: &BlobRef,
        body: &Bytes,
        pre: Precondition,
        lease: Option<LeaseId>,
        now: Instant,
        clock: &mut Clock,
    ) -> Served<Answer> {
        let container = self
            .containers
            .get_mut(blob.container())
            .ok_or_else(|| container_not_found(blob))?;
        let Some(b) = container.get_mut(blob.blob()) else {
            if let Some(id) = lease {
                return Err(refuse(
                    412,
                    "LeaseNotPresentWithBlobOperation",
                    format!("There is currently no lease on {blob} (it does not exist); lease {id} was given"),
                ));
            }
            if let Precondition::Match(want) = &pre {
                return Err(refuse(
                    412,
                    "ConditionNotMet",
                    format!("If-Match {want} on {blob}, which does not exist"),
                ));
            }
            let etag = clock.blob_etag();
            container.insert(
                blob.blob().to_owned(),
                Blob {
                    body: body.clone(),
                    etag: etag.clone(),
                    lease: Lease::Available,
                },
            );
            return Ok(Answer::ETag(etag));
        };
        b.lease.at(now);
        write_lease_check(blob, &b.lease, lease)?;
        match &pre {
            Precondition::NoneMatchAny => {
                return Err(refuse(
                    409,
                    "BlobAlreadyExists",
                    format!("The specified blob already exists: '{blob}'"),
                ))
            }
            Precondition::Match(want) if *want != b.etag => {
                return Err(condition_not_met(blob, want, &b.etag))
            }
            _ => {}
        }
        // Written since it expired: the expired lease can no longer be renewed.
        if let Lease::Expired { modified, .. } = &mut b.lease {
            *modified = true;
        }
        b.body = body.clone();
        b.etag = clock.blob_etag();
        Ok(Answer::ETag(b.etag.clone()))
    }
}

enum Precondition {
    None,
    NoneMatchAny,
    Match(ETag),
}

fn condition_not_met(blob: &BlobRef, want: &ETag, have: &ETag) -> Refusal {
    refuse(
        412,
        "ConditionNotMet",
        format!("The condition specified using HTTP conditional header(s) is not met: {blob} is at {have}, If-Match {want}"),
    )
}

/// A write's lease rules ("Outcomes of use attempts on blobs by lease state").
fn write_lease_check(blob: &BlobRef, lease: &Lease, given: Option<LeaseId>) -> Served<()> {
    match (lease, given) {
        (Lease::Leased { id, .. } | Lease::Breaking { id, .. }, None) => Err(refuse(
            412,
            "LeaseIdMissing",
            format!("There is currently a lease on {blob} (lease {id}) and no lease ID was specified in the request"),
        )),
        (Lease::Leased { id, .. } | Lease::Breaking { id, .. }, Some(g)) if *id == g => Ok(()),
        (Lease::Leased { id, .. } | Lease::Breaking { id, .. }, Some(g)) => Err(refuse(
            412,
            "LeaseIdMismatchWithBlobOperation",
            format!("The lease ID specified ({g}) did not match the lease ID for {blob} ({id})"),
        )),
        (Lease::Expired { id, .. } | Lease::Broken { id }, Some(g)) if *id == g => Err(refuse(
            412,
            "LeaseLost",
            format!("A lease ID ({g}) was specified, but the lease for {blob} has expired or was broken"),
        )),
        (Lease::Available | Lease::Expired { .. } | Lease::Broken { .. }, Some(g)) => Err(refuse(
            412,
            "LeaseNotPresentWithBlobOperation",
            format!("There is currently no lease on {blob}; lease {g} was given"),
        )),
        (Lease::Available | Lease::Expired { .. } | Lease::Broken { .. }, None) => Ok(()),
    }
}

/// The 409 of a renew, release or change that the lease's state does not allow.
fn lease_op_refusal(blob: &BlobRef, state: &Lease, given: LeaseId, verb: &str) -> Refusal {
    match state {
        Lease::Available => refuse(
            409,
            "LeaseNotPresentWithLeaseOperation",
            format!("There is currently no lease on {blob}; lease {given} cannot be {verb}"),
        ),
        Lease::Leased { id, .. }
        | Lease::Breaking { id, .. }
        | Lease::Broken { id }
        | Lease::Expired { id, .. }
            if *id != given =>
        {
            refuse(
                409,
                "LeaseIdMismatchWithLeaseOperation",
                format!("The lease ID specified ({given}) did not match the lease ID for {blob} ({id}); it cannot be {verb}"),
            )
        }
        Lease::Breaking { .. } | Lease::Broken { .. } => refuse(
            409,
            "LeaseIsBrokenAndCannotBeRenewed",
            format!("The lease {given} on {blob} is {} and cannot be {verb}", state.name()),
        ),
        Lease::Expired { .. } => refuse(
            409,
            "LeaseNotPresentWithLeaseOperation",
            format!("The lease {given} on {blob} has expired (and cannot be {verb} once the blob was written since)"),
        ),
        Lease::Leased { .. } => refuse(
            409,
            "LeaseIdMismatchWithLeaseOperation",
            format!("The lease {given} on {blob} cannot be {verb}"),
        ),
    }
}

#[cfg(test)]
impl Blobs {
    /// The lease state's name at `now`, for tests.
    pub fn lease_state(&mut self, blob: &BlobRef, now: Instant) -> Option<&'static str> {
        self.blob_mut(blob, now).ok().map(|b| b.lease.name())
    }
}
