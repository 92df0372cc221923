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
