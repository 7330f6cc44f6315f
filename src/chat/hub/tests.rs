//! The hub and matchmaker together on a real SQLite file, with channels standing in for
//! sockets.

use super::*;
use crate::db::{self, queries};

use crate::chat::link::{outbox, Delivery, OutboxReceiver, PartnerLink};

struct FakeSession {
    id: ConnId,
    outbox: OutboxReceiver,
    kicked: oneshot::Receiver<Kick>,
}

struct Setup {
    hub: HubHandle,
    pool: DbPool,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let pool = db::build_pool(&url, 2).expect("pool");
    db::run_migrations(&mut db::get(&pool).expect("conn")).expect("migrations");
    let hub = spawn(
        pool.clone(),
        ConnIds::with_node(1),
        Sharing::Alone,
        Duration::from_secs(60),
    );
    Setup {
        hub,
        pool,
        _dir: dir,
    }
}

impl Setup {
    async fn connect(&self, capacity: usize) -> FakeSession {
        let s = arrive(&self.hub, capacity).await;
        // The first thing every connection hears is the online count.
        assert!(matches!(next(&s.outbox).await, Outbound::Frame(f) if f.contains("online")));
        s
    }

    async fn request(&self, s: &FakeSession) {
        self.hub.request(s.id, Default::default()).expect("hub");
    }

    /// The session vanished (as a broken connection reports it).
    async fn leave(&self, id: ConnId) {
        self.hub.leave(id, Departure::Lost).await.expect("hub");
    }

    fn rows(&self) -> Vec<(i64, bool, Vec<i64>)> {
        queries::chats(&mut db::get(&self.pool).expect("conn")).expect("rows")
    }
}

/// What a session does first: tells the hub it is here (each its own visitor).
async fn arrive(hub: &HubHandle, capacity: usize) -> FakeSession {
    let id = hub.next_id();
    let (tx, outbox) = outbox(capacity);
    let (kick, kicked) = oneshot::channel();
    let visitor = VisitorKey::address(id.rid());
    let who = Who {
        visitor,
        address: visitor,
    };
    hub.connect(id, who, tx, kick).await.expect("hub");
    FakeSession { id, outbox, kicked }
}

async fn next(outbox: &OutboxReceiver) -> Outbound {
    tokio::time::timeout(Duration::from_secs(5), outbox.recv_async())
        .await
        .expect("in time")
        .expect("open")
}

async fn next_non_online(outbox: &OutboxReceiver) -> Outbound {
    loop {
        match next(outbox).await {
            Outbound::Frame(f) if f.contains(r#""online""#) => continue,
            other => return other,
        }
    }
}

async fn expect_paired(s: &mut FakeSession) -> PartnerLink {
    match next_non_online(&s.outbox).await {
        Outbound::Paired(paired) => paired.link,
        other => panic!("expected Paired, got {other:?}"),
    }
}

async fn expect_frame(s: &mut FakeSession, needle: &str) {
    match next_non_online(&s.outbox).await {
        Outbound::Frame(f) => assert!(f.contains(needle), "{f} lacks {needle}"),
        other => panic!("expected a frame with {needle}, got {other:?}"),
    }
}

#[tokio::test]
async fn the_second_request_pairs_both_and_each_gets_the_others_outbox() {
    let t = setup();
    let mut a = t.connect(8).await;
    let mut b = t.connect(8).await;
    t.request(&a).await;
    expect_frame(&mut a, r#""waiting""#).await;
    t.request(&b).await;
    let a_link = expect_paired(&mut a).await;
    let b_link = expect_paired(&mut b).await;
    assert_eq!((a_link.partner(), b_link.partner()), (b.id, a.id));

    // Relaying is a delivery over the link: no hub, no database.
    assert_eq!(a_link.deliver("hello".into()), Delivery::Delivered);
    assert!(matches!(next_non_online(&b.outbox).await, Outbound::Frame(f) if f == "hello"));
    let stats = t.hub.stats().await.expect("stats");
    assert_eq!((stats.chatting, stats.waiting), (2, 0));
    assert_eq!(t.rows().len(), 1);
}

#[tokio::test]
async fn leaving_tells_the_partner_how_and_removes_both_rows() {
    let t = setup();
    let a = t.connect(8).await;
    let mut b = t.connect(8).await;
    t.request(&a).await;
    t.request(&b).await;
    expect_paired(&mut b).await;
    t.leave(a.id).await;
    assert!(matches!(
        next_non_online(&b.outbox).await,
        Outbound::PartnerGone(Departure::Lost)
    ));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !t.rows().is_empty() {
        assert!(Instant::now() < deadline, "rows remain: {:?}", t.rows());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_ghost_in_the_rows_is_removed_and_the_visitor_waits_instead() {
    let t = setup();
    // A row of a connection this process does not have (a crashed process's visitor).
    let ghost = 77;
    queries::write_transaction(&mut db::get(&t.pool).expect("conn"), |c| {
        queries::request(c, ghost, ghost, None)
    })
    .expect("ghost");
    let mut a = t.connect(8).await;
    t.request(&a).await;
    expect_frame(&mut a, r#""waiting""#).await;
    let rows = t.rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].2, vec![a.id.rid()], "only the live visitor waits");
}

#[tokio::test]
async fn a_client_whose_outbox_is_full_is_kicked_as_too_slow() {
    let t = setup();
    let a = t.connect(1).await; // its one slot is free again after the online frame
    let mut b = t.connect(8).await;
    t.request(&b).await;
    expect_frame(&mut b, r#""waiting""#).await;
    // a never reads: the online update fills its outbox, and `Paired` finds it full.
    t.request(&a).await;
    let why = tokio::time::timeout(Duration::from_secs(5), a.kicked)
        .await
        .expect("in time");
    assert_eq!(why.ok(), Some(Kick::TooSlow));
}

#[tokio::test]
async fn shutdown_kicks_everyone_and_completes_when_they_have_left() {
    let t = setup();
    let a = t.connect(8).await;
    let b = t.connect(8).await;
    // Given far longer than the test waits: finishing in time means it was done.
    let hub = t.hub.clone();
    let finished = tokio::spawn(async move { hub.shutdown(Duration::from_secs(600)).await });
    for s in [a, b] {
        assert_eq!(s.kicked.await.ok(), Some(Kick::Shutdown));
        assert!(!finished.is_finished(), "not done while sessions remain");
        t.leave(s.id).await;
    }
    tokio::time::timeout(Duration::from_secs(5), finished)
        .await
        .expect("done fires in time")
        .expect("shutdown task");
    // Late arrivals are turned away.
    let late = arrive(&t.hub, 1).await;
    assert_eq!(late.kicked.await.ok(), Some(Kick::Shutdown));
}

#[tokio::test]
async fn requests_are_answered_unavailable_when_the_database_is_unreachable() {
    let pool = db::build_pool("sqlite:///nonexistent-dir/for/pairchat.db", 1).expect("pool");
    let hub = spawn(
        pool,
        ConnIds::with_node(2),
        Sharing::Alone,
        Duration::from_secs(60),
    );
    let s = arrive(&hub, 8).await;
    hub.request(s.id, Default::default()).expect("hub");
    assert!(matches!(
        next_non_online(&s.outbox).await,
        Outbound::Frame(f) if f.contains(r#""unavailable""#)
    ));
    // The connection is idle again and may ask once more.
    assert_eq!(hub.stats().await.expect("stats").waiting, 0);
}
