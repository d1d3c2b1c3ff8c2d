//! State-machine tests of one group, with time passed in.
use super::*;

const SESSION: Duration = Duration::from_secs(10);
const TIMERS: GroupTimers = GroupTimers { initial_rebalance_delay: Duration::ZERO };

fn member(g: &mut Group, id: &str, now: Instant) -> (Member, oneshot::Receiver<JoinResult>) {
    let (tx, rx) = oneshot::channel();
    let m = Member {
        id: id.into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: SESSION,
        rebalance_timeout: Duration::from_secs(30),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        assignment: Bytes::new(),
        join_waiter: Some(tx),
        sync_waiter: None,
        heartbeat_deadline: now + SESSION,
        joined_seq: g.next_join_seq(),
    };
    (m, rx)
}

fn sync_waiter(g: &mut Group, id: &str) -> oneshot::Receiver<SyncResult> {
    let (tx, rx) = oneshot::channel();
    g.members.get_mut(id).unwrap().sync_waiter = Some(tx);
    rx
}

#[test]
fn two_members_rebalance_to_stable() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let (a, mut ra) = member(&mut g, "a", now);
    g.add_member(a, "consumer", TIMERS, now, 0);
    // A single member that joined completes the join at once (no initial delay here).
    let ja = ra.try_recv().unwrap();
    assert_eq!((ja.error, ja.generation, ja.leader.as_str()), (NONE, 1, "a"));
    assert_eq!(ja.members.len(), 1, "the leader gets the member list");
    assert!(g.is(GroupState::CompletingRebalance));

    // b joins: the group must rebalance and wait for a to rejoin.
    let (b, mut rb) = member(&mut g, "b", now);
    g.add_member(b, "consumer", TIMERS, now, 0);
    assert!(g.is(GroupState::PreparingRebalance));
    assert!(rb.try_recv().is_err(), "b waits until a rejoins");
    let (tx, mut ra2) = oneshot::channel();
    g.members.get_mut("a").unwrap().join_waiter = Some(tx);
    g.try_complete_join(now, 0);
    let (ja, jb) = (ra2.try_recv().unwrap(), rb.try_recv().unwrap());
    assert_eq!((ja.generation, jb.generation), (2, 2));
    assert_eq!(ja.members.len(), 2);
    assert!(jb.members.is_empty(), "followers get no member list");

    let mut sb = sync_waiter(&mut g, "b");
    let mut sa = sync_waiter(&mut g, "a");
    g.complete_sync(vec![("a".into(), Bytes::from_static(b"A")), ("b".into(), Bytes::from_static(b"B"))], 0);
    assert!(g.is(GroupState::Stable));
    assert_eq!(&sa.try_recv().unwrap().assignment[..], b"A");
    assert_eq!(&sb.try_recv().unwrap().assignment[..], b"B");
}

#[test]
fn expired_member_triggers_rebalance_and_is_removed() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    for id in ["a", "b"] {
        let (m, _rx) = member(&mut g, id, now);
        g.members.insert(id.into(), Member { join_waiter: None, ..m });
    }
    g.generation = 3;
    g.leader = Some("a".into());
    g.state = GroupState::Stable;
    // a keeps heartbeating; b goes silent.
    g.members.get_mut("a").unwrap().heartbeat_deadline = now + SESSION * 3;
    g.tick(TIMERS, now + SESSION + Duration::from_millis(1), 0);
    assert!(!g.members.contains_key("b"), "b's session expired");
    assert!(g.is(GroupState::PreparingRebalance));
    // a rejoins: the rebalance completes with a alone.
    let (tx, mut ra) = oneshot::channel();
    g.members.get_mut("a").unwrap().join_waiter = Some(tx);
    g.try_complete_join(now + SESSION, 0);
    let j = ra.try_recv().unwrap();
    assert_eq!((j.generation, j.members.len()), (4, 1));
}

#[test]
fn member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let (a, _ra) = member(&mut g, "a", now);
    g.members.insert("a".into(), Member { join_waiter: None, ..a });
    g.state = GroupState::Stable;
    g.generation = 1;
    let (b, mut rb) = member(&mut g, "b", now);
    g.add_member(b, "consumer", TIMERS, now, 0);
    assert!(rb.try_recv().is_err());
    // a never rejoins (but keeps its session alive); at the rebalance timeout it is removed.
    g.members.get_mut("a").unwrap().heartbeat_deadline = now + Duration::from_secs(3600);
    g.tick(TIMERS, now + Duration::from_secs(31), 0);
    let j = rb.try_recv().unwrap();
    assert_eq!((j.error, j.leader.as_str(), j.members.len()), (NONE, "b", 1));
}

#[test]
fn initial_delay_holds_the_first_rebalance() {
    let timers = GroupTimers { initial_rebalance_delay: Duration::from_secs(3) };
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let (a, mut ra) = member(&mut g, "a", now);
    g.add_member(a, "consumer", timers, now, 0);
    assert!(ra.try_recv().is_err(), "held by group.initial.rebalance.delay.ms");
    g.tick(timers, now + Duration::from_secs(4), 0);
    assert_eq!(ra.try_recv().unwrap().generation, 1);
}

#[test]
fn leaving_the_last_member_empties_the_group() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let (a, _ra) = member(&mut g, "a", now);
    g.add_member(a, "consumer", TIMERS, now, 0);
    g.complete_sync(vec![], 0);
    assert!(g.remove_member("a", TIMERS, now, 5));
    assert!(g.is(GroupState::Empty), "{:?}", g.state);
    assert!(g.dirty);
}

#[test]
fn stored_form_round_trips() {
    let now = Instant::now();
    let mut g = Group::new("g", 0);
    let (a, _ra) = member(&mut g, "a", now);
    g.add_member(a, "consumer", TIMERS, now, 0);
    g.complete_sync(vec![("a".into(), Bytes::from_static(b"A"))], 7);
    let mut h = Group::new("g", 0);
    h.restore(g.to_value(), now, 9);
    assert!(h.is(GroupState::Stable));
    assert_eq!(h.generation, g.generation);
    assert_eq!(&h.members["a"].assignment[..], b"A");
}
