//! The apps in the deterministic simulator: the ledger's invariants (money conserved, no
//! account below its limit) are checked on every member after every batch it applies,
//! through crashes, partitions, loss and clock drift; a ledger broken on purpose is caught.

use ordo_apps::ledger::{LeakyLedger, Ledger, workload_command};
use ordo_service::machinery::sim::{SimConfig, run_app};

#[test]
fn the_ledger_keeps_its_invariants_on_every_member_through_every_fault() {
    let mut acked = 0;
    for seed in 0..100 {
        match run_app::<Ledger>(SimConfig::new(seed), workload_command) {
            Ok(stats) => acked += stats.acked,
            Err(failure) => panic!("{failure}"),
        }
    }
    assert!(acked > 10_000, "the ledger load got through: {acked} commands acknowledged");
}

#[test]
fn a_ledger_that_leaks_money_is_caught() {
    let failure = run_app::<LeakyLedger>(SimConfig::new(1), workload_command).expect_err("caught");
    assert_eq!(failure.checker, "app invariant", "{failure}");
    assert!(failure.message.contains("money not conserved"), "{failure}");
}

#[test]
fn the_kv_store_and_the_mutex_keep_their_invariants_through_every_fault() {
    for seed in 0..30 {
        if let Err(failure) = run_app::<ordo_apps::kv::Kv>(SimConfig::new(seed), ordo_apps::kv::workload_command) {
            panic!("{failure}");
        }
        let mutex = run_app::<ordo_apps::mutex::Mutex>(SimConfig::new(seed), ordo_apps::mutex::workload_command);
        if let Err(failure) = mutex {
            panic!("{failure}");
        }
    }
}

#[test]
fn the_airlocks_stay_safe_on_every_member_through_every_fault() {
    for seed in 0..30 {
        let result = run_app::<ordo_apps::airlock::Airlock>(SimConfig::new(seed), ordo_apps::airlock::workload_command);
        if let Err(failure) = result {
            panic!("{failure}");
        }
    }
}

#[test]
fn the_order_book_never_crosses_on_any_member_through_every_fault() {
    for seed in 0..30 {
        let result = run_app::<ordo_apps::book::Book>(SimConfig::new(seed), ordo_apps::book::workload_command);
        if let Err(failure) = result {
            panic!("{failure}");
        }
    }
}
