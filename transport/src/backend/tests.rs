//! One test suite, run against every backend.

use super::*;
use std::time::{Duration, Instant};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

type Open = fn(SocketAddr, usize) -> io::Result<Box<dyn Datagrams>>;

fn backends() -> Vec<(&'static str, Open)> {
    vec![
        ("std", |addr, mtu| Ok(Box::new(StdUdp::bind(addr, mtu)?))),
        ("io_uring", |addr, mtu| Ok(Box::new(UringUdp::bind(addr, mtu)?))),
    ]
}

/// Receives until `count` datagrams arrived or 5 s passed.
fn receive(endpoint: &mut dyn Datagrams, count: usize) -> Vec<(SocketAddr, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < count && Instant::now() < deadline {
        let n = endpoint.recv_batch(&mut |source, bytes| got.push((source, bytes.to_vec()))).unwrap();
        if n == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    got
}

#[test]
fn a_batch_arrives_whole_and_in_order_on_loopback() {
    for (name, open) in backends() {
        let mut a = open(loopback(), 1408).unwrap();
        let mut b = open(loopback(), 1408).unwrap();
        let payloads: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 100 + i as usize * 30]).collect();
        let batch: Vec<Outgoing> = payloads.iter().map(|p| Outgoing { to: b.local_addr(), bytes: p }).collect();
        assert_eq!(a.send_batch(&batch).unwrap(), 40, "{name}");
        let got = receive(b.as_mut(), 40);
        assert_eq!(got.len(), 40, "{name}");
        for (i, (source, bytes)) in got.iter().enumerate() {
            assert_eq!(*source, a.local_addr(), "{name}");
            assert_eq!(bytes, &payloads[i], "{name}: loopback keeps order");
        }
        assert_eq!(a.name(), name);
    }
}

#[test]
fn nothing_arrived_means_zero_and_no_blocking() {
    for (name, open) in backends() {
        let mut a = open(loopback(), 1408).unwrap();
        let start = Instant::now();
        assert_eq!(a.recv_batch(&mut |_, _| panic!("nothing was sent")).unwrap(), 0, "{name}");
        assert!(start.elapsed() < Duration::from_millis(100), "{name}: recv_batch never blocks");
    }
}

#[test]
fn a_datagram_over_the_mtu_arrives_marked_too_long() {
    for (name, open) in backends() {
        let mut a = open(loopback(), 4000).unwrap();
        let mut b = open(loopback(), 1408).unwrap();
        let big = vec![7u8; 3000];
        a.send_batch(&[Outgoing { to: b.local_addr(), bytes: &big }]).unwrap();
        let got = receive(b.as_mut(), 1);
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(got[0].1.len(), 1409, "{name}: cut to mtu + 1 so the decoder refuses it");
    }
}

#[test]
fn many_batches_in_both_directions() {
    for (name, open) in backends() {
        let mut a = open(loopback(), 1408).unwrap();
        let mut b = open(loopback(), 1408).unwrap();
        let mut received_by_b = 0;
        let mut received_by_a = 0;
        for round in 0..50u32 {
            let bytes = round.to_le_bytes();
            let to_b = vec![Outgoing { to: b.local_addr(), bytes: &bytes }; 20];
            let to_a = vec![Outgoing { to: a.local_addr(), bytes: &bytes }; 20];
            assert_eq!(a.send_batch(&to_b).unwrap(), 20);
            assert_eq!(b.send_batch(&to_a).unwrap(), 20);
            received_by_b += receive(b.as_mut(), 20).len();
            received_by_a += receive(a.as_mut(), 20).len();
        }
        assert_eq!((received_by_a, received_by_b), (1000, 1000), "{name}");
    }
}

#[test]
fn open_falls_back_or_uses_the_asked_backend() {
    let (endpoint, message) = open(BackendKind::IoUring, loopback(), 1408).unwrap();
    match message {
        None => assert_eq!(endpoint.name(), "io_uring"),
        Some(message) => {
            assert_eq!(endpoint.name(), "std");
            assert!(message.contains("io_uring is not available"));
        }
    }
    let (endpoint, message) = open(BackendKind::Std, loopback(), 1408).unwrap();
    assert_eq!((endpoint.name(), message), ("std", None));
}

#[test]
fn wait_readable_returns_when_a_datagram_arrives_or_the_timeout_passes() {
    for (name, open) in backends() {
        let mut a = open(loopback(), 1408).unwrap();
        let mut b = open(loopback(), 1408).unwrap();
        let start = Instant::now();
        b.wait_readable(Duration::from_millis(30)).unwrap();
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(25) && waited < Duration::from_secs(2), "{name}: waited {waited:?}");
        a.send_batch(&[Outgoing { to: b.local_addr(), bytes: b"wake" }]).unwrap();
        let start = Instant::now();
        b.wait_readable(Duration::from_secs(5)).unwrap();
        assert!(start.elapsed() < Duration::from_secs(1), "{name}: woke on arrival");
        assert_eq!(receive(b.as_mut(), 1).len(), 1, "{name}");
    }
}
