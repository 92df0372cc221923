//! Plain PNG QR images (the two-colour encoder in `qr_png`) read back by
//! zbarimg at every ecc, from small to the largest size, in the default
//! colours and in custom ones.

use gateway::qr_render::{parse_query, render, Format};
use std::process::Command;

#[test]
fn plain_pngs_read_back_in_zbarimg_at_every_ecc_size_and_colour() {
    let dir = tempfile::tempdir().unwrap();
    let content = "https://go.example.com/alice10/yt-video42?qr=1";
    let mut read = 0;
    for ecc in ["L", "M", "Q", "H"] {
        for size in [200, 512, 1000, 2048, 4096] {
            for colours in ["", "&fg=1a237e&bg=fff8e1"] {
                let query = format!("size={size}&ecc={ecc}{colours}");
                let options = parse_query(Some(&query)).unwrap().options;
                let png = render(content, &options, Format::Png).unwrap();
                let path = dir
                    .path()
                    .join(format!("{ecc}-{size}-{}.png", colours.len()));
                std::fs::write(&path, &png).unwrap();
                let out = Command::new("zbarimg")
                    .args(["-q", "--raw"])
                    .arg(&path)
                    .output()
                    .expect("zbarimg (zbar-tools) is installed");
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout).trim(),
                    content,
                    "{query}: {} bytes",
                    png.len()
                );
                read += 1;
            }
        }
    }
    assert_eq!(read, 4 * 5 * 2);
}

/// CPU time of this thread so far, in ns (`/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Not a check: prints the CPU time per uncached plain PNG render and its
/// bytes, per size and ecc (load-tests/results/qr-issue15.md). Run with
/// `cargo test --release -p gateway --test qr_png -- --ignored --nocapture`.
#[test]
#[ignore]
fn render_time() {
    let content = "http://127.0.0.1:8080/bench1?qr=1";
    println!("| ecc | size | bytes | CPU ms per render (median of 9 batches; min–max) |");
    println!("|---|---|---|---|");
    for ecc in ["M", "H"] {
        for size in [256u32, 512, 1024, 2048, 4096] {
            let query = format!("size={size}&ecc={ecc}");
            let options = parse_query(Some(&query)).unwrap().options;
            let bytes = render(content, &options, Format::Png).unwrap().len();
            // Batches long enough for the scheduler's accounting (ticks).
            let per_batch = (200_000 / size as usize).max(20);
            let mut ms: Vec<f64> = (0..9)
                .map(|_| {
                    let start = thread_cpu_ns();
                    for _ in 0..per_batch {
                        std::hint::black_box(render(content, &options, Format::Png).unwrap());
                    }
                    (thread_cpu_ns() - start) as f64 / 1e6 / per_batch as f64
                })
                .collect();
            ms.sort_by(f64::total_cmp);
            println!(
                "| {ecc} | {size} | {bytes} | {:.3} ({:.3}–{:.3}) |",
                ms[4], ms[0], ms[8]
            );
        }
    }
}
