//! The deployment files under `deploy/`, checked with what this machine has
//! (no container runtime): HAProxy's own config check, the YAML parsed
//! (python3 + PyYAML, as scripts/test installs them), and the files' claims
//! held against the code: every `CODELINK_*` variable exists, the Dockerfile
//! builds the workspace's binary, the probes and grace periods fit the drain.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every document of a YAML file, as JSON (PyYAML's safe loader).
fn yaml(rel: &str) -> Vec<serde_json::Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(root().join(rel))
        .output()
        .expect("python3 (scripts/test installs it with PyYAML)");
    assert!(
        out.status.success(),
        "{rel} does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const DEPLOY_FILES: &[&str] = &[
    "deploy/Dockerfile",
    "deploy/compose.yaml",
    "deploy/haproxy.cfg",
    "deploy/k8s/configmap.yaml",
    "deploy/k8s/deployment.yaml",
    "deploy/k8s/secret.example.yaml",
    "deploy/k8s/service.yaml",
    "deploy/k8s/kustomization.yaml",
];

/// `CODELINK_[A-Z0-9_]+` words in `text`.
fn codelink_vars(text: &str) -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("CODELINK_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        vars.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    vars
}

#[test]
fn haproxy_accepts_the_config() {
    let out = Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(root().join("deploy/haproxy.cfg"))
        .output()
        .expect("haproxy (Debian `haproxy`; scripts/test installs it)");
    let log =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "haproxy -c failed:\n{log}");
    // The only warnings allowed: the compose service names do not resolve
    // on this host (HAProxy resolves them at run time in compose).
    for line in log.lines().filter(|l| l.contains("WARNING")) {
        assert!(
            line.contains("could not resolve address 'gateway"),
            "{line}"
        );
    }
}

#[test]
fn every_yaml_file_parses() {
    for file in DEPLOY_FILES.iter().filter(|f| f.ends_with(".yaml")) {
        assert!(!yaml(file).is_empty(), "{file} is empty");
    }
}

#[test]
fn every_codelink_variable_named_exists() {
    // The flags' variables (config.rs) and the log filter (main.rs).
    let mut known = codelink_vars(&read("gateway/src/config.rs"));
    known.extend(codelink_vars(&read("gateway/src/main.rs")));
    assert!(known.contains("CODELINK_DRAIN_SECS"), "{known:?}");
    let mut named = 0;
    for file in DEPLOY_FILES {
        for var in codelink_vars(&read(file)) {
            named += 1;
            assert!(
                known.contains(&var),
                "{file} names {var}, which codelink does not read"
            );
        }
    }
    assert!(named >= 20, "only {named} variables found in deploy/");
}

#[test]
fn the_dockerfile_builds_the_workspace_binary_and_runs_it_unprivileged() {
    let dockerfile = read("deploy/Dockerfile");
    let gateway_manifest = read("gateway/Cargo.toml");
    assert!(gateway_manifest.contains("name = \"gateway\""));
    assert!(gateway_manifest.contains("[[bin]]\nname = \"codelink\""));
    assert!(
        dockerfile.contains("cargo build --release --locked -p gateway --bin codelink"),
        "{dockerfile}"
    );
    assert!(dockerfile.contains("cp target/release/codelink /usr/local/bin/codelink"));
    // The toolchain image is at least the one the workspace builds with here.
    let from = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .expect("a rust builder stage");
    let version: Vec<u32> = from
        .split('-')
        .next()
        .unwrap()
        .split('.')
        .map(|n| n.parse().unwrap())
        .collect();
    let rustc = Command::new("rustc").arg("--version").output().unwrap();
    let rustc = String::from_utf8_lossy(&rustc.stdout).to_string();
    let here: Vec<u32> = rustc
        .split_whitespace()
        .nth(1)
        .unwrap()
        .split('.')
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        version >= here,
        "Dockerfile uses rust {version:?}, this workspace is built with {rustc}"
    );
    assert!(dockerfile.contains("FROM debian:bookworm-slim"));
    assert!(dockerfile.contains("USER 10001:10001"));
    assert!(dockerfile.contains("VOLUME [\"/data\"]"));
    assert!(dockerfile.contains("EXPOSE 8080"));
    assert!(dockerfile.contains("CODELINK_LISTEN=0.0.0.0:8080"));
    assert!(dockerfile.contains("CMD [\"codelink\", \"healthcheck\""));
    // The build context keeps every workspace member (Cargo needs them all).
    let ignore = read(".dockerignore");
    let manifest = read("Cargo.toml");
    let members = manifest
        .lines()
        .find_map(|l| l.strip_prefix("members = "))
        .unwrap();
    for member in members.trim_matches(|c| c == '[' || c == ']').split(',') {
        let member = member.trim().trim_matches('"');
        assert!(
            !ignore.lines().any(|l| l.trim() == member),
            ".dockerignore drops workspace member {member}"
        );
    }
}

fn secs(v: &serde_json::Value) -> u64 {
    match v {
        serde_json::Value::String(s) => s.trim_end_matches('s').parse().unwrap(),
        v => v.as_u64().unwrap(),
    }
}

#[test]
fn grace_periods_and_probes_fit_the_drain() {
    // HAProxy: checks /readyz and marks a draining gateway down within the drain.
    let haproxy = read("deploy/haproxy.cfg");
    assert!(haproxy.contains("http-check send meth GET uri /readyz"));
    assert!(haproxy.contains("balance roundrobin"));
    assert!(haproxy.contains("option forwardfor"));
    let inter_fall = haproxy
        .lines()
        .find(|l| l.trim_start().starts_with("default-server"))
        .unwrap();
    let word_after = |w: &str| -> u64 {
        let mut it = inter_fall.split_whitespace();
        it.find(|x| *x == w).unwrap();
        it.next().unwrap().trim_end_matches('s').parse().unwrap()
    };
    let takes_out = word_after("inter") * word_after("fall");

    let compose = &yaml("deploy/compose.yaml")[0];
    for name in ["gateway1", "gateway2"] {
        let gw = &compose["services"][name];
        let env = &gw["environment"];
        let drain = secs(&env["CODELINK_DRAIN_SECS"]);
        let timeout = secs(&env["CODELINK_SHUTDOWN_TIMEOUT_SECS"]);
        assert!(
            takes_out < drain,
            "HAProxy takes {takes_out} s, the drain is {drain} s"
        );
        assert!(secs(&gw["stop_grace_period"]) > drain + 2 * timeout);
        assert_eq!(env["CODELINK_CLIENT_IP_HEADER"], "x-forwarded-for");
    }
    for service in ["haproxy", "redis", "clickhouse"] {
        assert!(
            compose["services"][service]["image"].is_string(),
            "{service}"
        );
    }

    // Kubernetes.
    let config = &yaml("deploy/k8s/configmap.yaml")[0]["data"];
    let drain = secs(&config["CODELINK_DRAIN_SECS"]);
    let timeout = secs(&config["CODELINK_SHUTDOWN_TIMEOUT_SECS"]);
    let deployment = &yaml("deploy/k8s/deployment.yaml")[0];
    assert_eq!(deployment["kind"], "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(secs(&pod["terminationGracePeriodSeconds"]) > drain + 2 * timeout);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    let r = &c["readinessProbe"];
    assert!(secs(&r["periodSeconds"]) * secs(&r["failureThreshold"]) < drain);
    assert!(c["resources"]["requests"]["cpu"].is_string());
    let sources: Vec<_> = c["envFrom"].as_array().unwrap().iter().collect();
    assert!(sources.iter().any(|s| s["secretRef"]["name"] == "codelink"));
    assert!(sources
        .iter()
        .any(|s| s["configMapRef"]["name"] == "codelink"));
    let secret = &yaml("deploy/k8s/secret.example.yaml")[0];
    for key in ["CODELINK_ADMIN_KEY", "CODELINK_SECRET"] {
        assert!(secret["stringData"][key].is_string(), "{key}");
    }
    let service = &yaml("deploy/k8s/service.yaml")[0];
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
}
