//! Loopback aliases: addresses of 127.0.0.0/8 put on `lo` as its own
//! (`ip addr add 127.0.0.N/8 dev lo`), for a [`crate::ClickHouseCluster`]
//! whose nodes must each find their address among the machine's.

use std::net::Ipv4Addr;
use std::process::Command;

/// Makes every one of `addrs` an address of `lo`, adding those it lacks
/// (idempotent; never removes one, 127.0.0.1 is left as it is). Needs root
/// and `ip` (Debian's iproute2); `Err` says which is missing. The shell
/// equivalent, for scripts: `ip -4 addr show dev lo | grep -q 'inet
/// 127.0.0.2/' || ip addr add 127.0.0.2/8 dev lo`.
pub fn ensure_loopback_aliases(addrs: &[Ipv4Addr]) -> Result<(), String> {
    for addr in addrs {
        if *addr == Ipv4Addr::LOCALHOST || on_lo(*addr)? {
            continue;
        }
        let out = Command::new("ip")
            .args(["addr", "add", &format!("{addr}/8"), "dev", "lo"])
            .output()
            .map_err(|e| format!("`ip` did not run ({e}): install iproute2"))?;
        // Another test may have added it meanwhile ("File exists").
        if !on_lo(*addr)? {
            return Err(format!(
                "`ip addr add {addr}/8 dev lo` failed ({}): it needs root",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

/// Whether `addr` is an address of `lo` now.
fn on_lo(addr: Ipv4Addr) -> Result<bool, String> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", "lo"])
        .output()
        .map_err(|e| format!("`ip` did not run ({e}): install iproute2"))?;
    if !out.status.success() {
        return Err(format!(
            "`ip -4 addr show dev lo` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).contains(&format!("inet {addr}/")))
}
