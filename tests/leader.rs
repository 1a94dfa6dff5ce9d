//! The lease loop (leadership) against a real Azurite, including storage going silent.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{azurite, lease_blob};
use samza_azure_coordinator::config::{StorageConfig, DEV_ACCOUNT, DEV_ACCOUNT_KEY};
use samza_azure_coordinator::lease::{LeaseKeeper, LeaseState, LeaseTiming};
use samza_azure_coordinator::storage::{
    AzureStorage, BlobRef, DocumentStore, Guard, LeaseDuration, LeaseStore,
};
use samza_azure_coordinator::ErrorKind;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

fn fast() -> LeaseTiming {
    LeaseTiming {
        duration: Duration::from_secs(15),
        renew_interval: Duration::from_secs(1),
        acquire_interval: Duration::from_millis(300),
        safety_margin: Duration::from_secs(1),
    }
}

fn keeper(blob: &BlobRef, timing: LeaseTiming) -> LeaseKeeper {
    LeaseKeeper::spawn(Arc::new(azurite().storage()), blob.clone(), timing).unwrap()
}

async fn await_state(
    rx: &mut watch::Receiver<LeaseState>,
    bound: Duration,
    want: impl Fn(&LeaseState) -> bool,
) -> LeaseState {
    let observer = rx.clone();
    let reached = tokio::time::timeout(bound, rx.wait_for(|s| want(s))).await;
    match reached {
        Ok(state) => state.unwrap().clone(),
        Err(_) => panic!(
            "state not reached within {bound:?}; now {:?}",
            *observer.borrow()
        ),
    }
}

async fn await_one_leader(keepers: &[LeaseKeeper], bound: Duration) -> usize {
    let start = Instant::now();
    loop {
        let leaders: Vec<usize> = (0..keepers.len())
            .filter(|&i| keepers[i].state().is_leader())
            .collect();
        assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
        if leaders.len() == 1 {
            return leaders[0];
        }
        assert!(start.elapsed() < bound, "no leader within {bound:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_among_three_and_its_lease_fences_writes() {
    let blob = lease_blob(&azurite().storage(), "leader").await;
    let keepers: Vec<LeaseKeeper> = (0..3).map(|_| keeper(&blob, fast())).collect();
    let leader = await_one_leader(&keepers, Duration::from_secs(10)).await;
    let lease = keepers[leader].state().lease().unwrap();
    let s = azurite().storage();
    s.replace_document(&blob, Bytes::from_static(b"v1"), Guard::lease(lease))
        .await
        .unwrap();
    let e = s
        .acquire_lease(&blob, LeaseDuration::Seconds(15), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseHeld);
    // Observe for several renew periods: still exactly that leader, same lease.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(await_one_leader(&keepers, Duration::ZERO).await, leader);
    assert_eq!(
        keepers[leader].state().lease(),
        Some(lease),
        "renewed, not re-acquired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_hands_over_within_the_acquire_interval() {
    let blob = lease_blob(&azurite().storage(), "leader").await;
    let mut keepers: Vec<LeaseKeeper> = (0..2).map(|_| keeper(&blob, fast())).collect();
    let leader = await_one_leader(&keepers, Duration::from_secs(10)).await;
    let mut other = keepers[1 - leader].subscribe();
    keepers[leader].stop().await;
    assert_eq!(keepers[leader].state(), LeaseState::Stopped);
    await_state(&mut other, Duration::from_secs(3), LeaseState::is_leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_taken_steps_down() {
    let blob = lease_blob(&azurite().storage(), "leader").await;
    let k = keeper(&blob, fast());
    let mut rx = k.subscribe();
    let LeaseState::Leader { lease, term, .. } =
        await_state(&mut rx, Duration::from_secs(5), LeaseState::is_leader).await
    else {
        unreachable!()
    };
    assert_eq!(term, 1);
    let rival = azurite().storage();
    rival.break_lease(&blob, Duration::ZERO).await.unwrap();
    let rival_lease = rival
        .acquire_lease(&blob, LeaseDuration::Seconds(60), None)
        .await
        .unwrap();
    // The next renew (within 1 s) is rejected by storage: the keeper must step down.
    await_state(&mut rx, Duration::from_secs(4), |s| {
        *s == LeaseState::Follower
    })
    .await;
    let e = rival
        .replace_document(&blob, Bytes::from_static(b"x"), Guard::lease(lease))
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::LeaseLost,
        "the old lease fences nothing any more"
    );
    rival.release_lease(&blob, rival_lease).await.unwrap();
    let LeaseState::Leader { term, .. } =
        await_state(&mut rx, Duration::from_secs(3), LeaseState::is_leader).await
    else {
        unreachable!()
    };
    assert_eq!(term, 2, "re-acquired as a new term");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_over_breaks_a_crashed_leaders_lease() {
    let blob = lease_blob(&azurite().storage(), "leader").await;
    let crashed = keeper(&blob, fast());
    await_state(
        &mut crashed.subscribe(),
        Duration::from_secs(5),
        LeaseState::is_leader,
    )
    .await;
    drop(crashed); // aborted without releasing: the lease stays held in storage
    let slow = LeaseTiming {
        acquire_interval: Duration::from_secs(60),
        ..fast()
    };
    let survivor = keeper(&blob, slow);
    let mut rx = survivor.subscribe();
    // The lease is held by the dead keeper, so on its own the survivor would only get it when
    // the lease lapses (up to 15 s) and its next attempt comes (60 s).
    assert_eq!(survivor.state(), LeaseState::Follower);
    let start = Instant::now();
    survivor.take_over();
    await_state(&mut rx, Duration::from_secs(3), LeaseState::is_leader).await;
    eprintln!("take-over took {:?}", start.elapsed());
}

/// A TCP proxy in front of Azurite that can go silent (accepts, never answers).
async fn silent_proxy(target: u16) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = Arc::new(AtomicBool::new(false));
    let flag = silent.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let flag = flag.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else {
                    return;
                };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let mut up = [0u8; 16384];
                let mut down = [0u8; 16384];
                loop {
                    tokio::select! {
                        n = tokio::io::AsyncReadExt::read(&mut cr, &mut up) => match n {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                // Silent: swallow requests, keep the connection open.
                                if !flag.load(Ordering::SeqCst)
                                    && tokio::io::AsyncWriteExt::write_all(&mut sw, &up[..n]).await.is_err()
                                {
                                    return;
                                }
                            }
                        },
                        n = tokio::io::AsyncReadExt::read(&mut sr, &mut down) => match n {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if tokio::io::AsyncWriteExt::write_all(&mut cw, &down[..n]).await.is_err() {
                                    return;
                                }
                            }
                        },
                    }
                }
            });
        }
    });
    (port, silent)
}

/// A lease keeper whose blob requests go through the proxy on `port`.
fn keeper_through(port: u16, blob: &BlobRef, timing: LeaseTiming) -> LeaseKeeper {
    let cfg = StorageConfig::from_connection_string(&format!(
        "AccountName={DEV_ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};TableEndpoint=http://127.0.0.1:{}/{DEV_ACCOUNT}",
        azurite().table_port
    ))
    .unwrap();
    LeaseKeeper::spawn(
        Arc::new(AzureStorage::new(&cfg).unwrap()),
        blob.clone(),
        timing,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_cut_off_from_storage_steps_down_before_its_lease_can_lapse() {
    let blob = lease_blob(&azurite().storage(), "leader").await;
    let (port, silent) = silent_proxy(azurite().blob_port).await;
    let k = keeper_through(port, &blob, fast());
    let mut rx = k.subscribe();
    await_state(&mut rx, Duration::from_secs(5), LeaseState::is_leader).await;
    let cut = Instant::now();
    silent.store(true, Ordering::SeqCst);
    await_state(&mut rx, Duration::from_secs(20), |s| {
        *s == LeaseState::Follower
    })
    .await;
    let after = cut.elapsed();
    // The last successful renew was sent before the cut, so storage holds the lease for at
    // most 15 s after the cut: stepping down must come first.
    assert!(
        after < Duration::from_secs(15),
        "stepped down {after:?} after the cut"
    );
    assert!(
        after > Duration::from_secs(10),
        "stepped down too early ({after:?}): a short outage must not cost leadership"
    );
}

/// A leader that lost its lease only because storage could not be reached (a stall longer than
/// the lease) must compete for it again as soon as storage answers, not one acquire interval
/// later: until someone leads, nobody judges deaths or rebalances. (Found by `gradle
/// faultBench`: after a 30 s stall the job had no leader for 29 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_lost_its_lease_to_an_outage_takes_it_back_once_storage_answers() {
    let blob = lease_blob(&azurite().storage(), "stalled").await;
    let (port, silent) = silent_proxy(azurite().blob_port).await;
    let timing = LeaseTiming {
        // Far beyond the bound below: only a prompt retry can take the lease back in time.
        acquire_interval: Duration::from_secs(120),
        ..fast()
    };
    let k = keeper_through(port, &blob, timing);
    let mut rx = k.subscribe();
    await_state(&mut rx, Duration::from_secs(5), LeaseState::is_leader).await;
    silent.store(true, Ordering::SeqCst);
    await_state(&mut rx, Duration::from_secs(20), |s| {
        *s == LeaseState::Follower
    })
    .await;
    // Storage stays silent past the lease's end (15 s after the last renew), as in a stall
    // longer than the lease; then it answers again.
    let lapsed = Instant::now() + Duration::from_secs(3);
    while Instant::now() < lapsed {
        assert_eq!(*rx.borrow(), LeaseState::Follower, "led while cut off");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    silent.store(false, Ordering::SeqCst);
    let back = Instant::now();
    await_state(&mut rx, Duration::from_secs(10), LeaseState::is_leader).await;
    eprintln!("led again {:?} after storage answered", back.elapsed());
}
