//! CoordinationUtils' native half (`coordination::Group`) against storage that answers as
//! Azure does.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{azurite, eventually, unique};
use samza_azure_coordinator::coordination::Group;
use samza_azure_coordinator::coordinator::names::JobIdentity;
use samza_azure_coordinator::lease::LeaseState;

/// A second participant competing for a lease someone holds must wait its turn, not fail:
/// on Azure its create-if-absent of the lease blob is refused for the missing lease id
/// (412 LeaseIdMissing), which Azurite answers as "already exists".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_participant_waits_for_a_held_lease_instead_of_failing() {
    let identity = JobIdentity {
        name: unique("utils"),
        id: "1".into(),
    };
    let group = |_: u8| Group::new(Arc::new(azurite().storage()), &identity, "g").unwrap();
    let (first, second) = (group(1), group(2));
    let mut holder = first
        .lease("lock-a", Duration::from_millis(100))
        .await
        .unwrap();
    let held = holder.subscribe();
    eventually(
        "the first participant leads",
        Duration::from_secs(10),
        || {
            let leading = matches!(*held.borrow(), LeaseState::Leader { .. });
            async move { leading }
        },
    )
    .await;
    let mut waiter = second
        .lease("lock-a", Duration::from_millis(100))
        .await
        .expect("competing for a held lease is not an error");
    assert!(!matches!(waiter.state(), LeaseState::Leader { .. }));
    holder.stop().await;
    let next = waiter.subscribe();
    eventually(
        "the second participant leads once it is free",
        Duration::from_secs(10),
        || {
            let leading = matches!(*next.borrow(), LeaseState::Leader { .. });
            async move { leading }
        },
    )
    .await;
    waiter.stop().await;
}
