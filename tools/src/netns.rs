//! Network namespaces for partition tests (`ordo bank --partitions`; root only): a hub
//! namespace holding a bridge, and one namespace per member joined to it by a veth pair, so
//! each member has an address of its own (10.R.0.I) and the test can cut it off. Everything
//! is made with `ip` (Debian's iproute2) under names carrying this process's id, and deleted
//! when the `Network` is dropped; nothing outside these namespaces is touched.
//!
//! Faults: `isolate` (a blackhole qdisc on both ends of the member's veth: nothing in or
//! out), `drop_outgoing` (on the member's end only: it hears everyone, nobody hears it), and
//! `heal`. A blackhole qdisc is used because this kernel has neither netem nor tc
//! classifiers, and it needs no firewall.

use crate::Failure;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

pub struct Network {
    prefix: String,
    members: usize,
    /// The second octet of the members' addresses (from the pid, so runs don't collide).
    octet: u8,
}

fn ip(args: &[&str]) -> Result<(), Failure> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Failure(format!("cannot run ip (install iproute2): {e}")))?;
    if !output.status.success() {
        return Err(Failure(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

impl Network {
    /// The hub, the bridge and one namespace per member, all up.
    pub fn create(members: usize) -> Result<Network, Failure> {
        if !rustix::process::geteuid().is_root() {
            return Err(Failure(
                "partitions need network namespaces, which need root: run as root, or without --partitions".into(),
            ));
        }
        let pid = std::process::id();
        let network = Network { prefix: format!("ordo{pid}"), members, octet: 100 + (pid % 100) as u8 };
        let hub = network.hub();
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "addr", "add", &format!("10.{}.0.254/24", network.octet), "dev", "br0"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for index in 0..members {
            let (name, (outer, inner)) = (network.member(index), network.veth(index));
            ip(&["netns", "add", &name])?;
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
            ip(&["-n", &hub, "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &name])?;
            ip(&["-n", &hub, "link", "set", &outer, "master", "br0", "up"])?;
            let address = format!("{}/24", network.address(index, 0).ip());
            ip(&["-n", &name, "addr", "add", &address, "dev", &inner])?;
            ip(&["-n", &name, "link", "set", &inner, "up"])?;
        }
        Ok(network)
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    fn member(&self, index: usize) -> String {
        format!("{}-m{}", self.prefix, index + 1)
    }

    /// (hub end, member end) of member `index`'s veth pair.
    fn veth(&self, index: usize) -> (String, String) {
        (format!("h{}", index + 1), format!("m{}", index + 1))
    }

    /// Member `index`'s address at `port`.
    pub fn address(&self, index: usize, port: u16) -> SocketAddr {
        (Ipv4Addr::new(10, self.octet, 0, index as u8 + 1), port).into()
    }

    /// The command words that run a program in member `index`'s namespace.
    pub fn exec_prefix(&self, index: usize) -> Vec<String> {
        ["ip", "netns", "exec"].iter().map(|s| s.to_string()).chain([self.member(index)]).collect()
    }

    /// Moves the calling thread into the hub namespace (sockets it opens after are there).
    pub fn enter_hub(&self) -> Result<(), Failure> {
        let path = format!("/var/run/netns/{}", self.hub());
        let file = std::fs::File::open(&path).map_err(|e| Failure(format!("cannot open {path}: {e}")))?;
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| Failure(format!("cannot enter the namespace {path}: {e}")))
    }

    fn blackhole(&self, namespace: &str, device: &str) -> Result<(), Failure> {
        ip(&["netns", "exec", namespace, "tc", "qdisc", "replace", "dev", device, "root", "blackhole"])
    }

    /// Cuts member `index` off from everyone, both ways.
    pub fn isolate(&self, index: usize) -> Result<(), Failure> {
        let (outer, inner) = self.veth(index);
        self.blackhole(&self.member(index), &inner)?;
        self.blackhole(&self.hub(), &outer)
    }

    /// Drops everything member `index` sends; it still hears the others.
    pub fn drop_outgoing(&self, index: usize) -> Result<(), Failure> {
        self.blackhole(&self.member(index), &self.veth(index).1)
    }

    /// Removes every cut.
    pub fn heal(&self) -> Result<(), Failure> {
        for index in 0..self.members {
            let (outer, inner) = self.veth(index);
            // Deleting a root qdisc that is already the default fails: that is fine.
            let _ = ip(&["netns", "exec", &self.member(index), "tc", "qdisc", "del", "dev", &inner, "root"]);
            let _ = ip(&["netns", "exec", &self.hub(), "tc", "qdisc", "del", "dev", &outer, "root"]);
        }
        Ok(())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for index in 0..self.members {
            let _ = ip(&["netns", "del", &self.member(index)]);
        }
        let _ = ip(&["netns", "del", &self.hub()]);
    }
}
