//! `codelink migrate`: builds the rollups of data an earlier version wrote,
//! with progress on stderr. Takes the same flags (and `CODELINK_*` variables)
//! as `codelink serve`. Resumable and idempotent: run it again after an
//! interruption, or just to check (it then has nothing to do).

use crate::config::Config;
use codelink_analytics::migration::{self, Progress};
use std::io::{IsTerminal, Write};

pub async fn run(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    let target = if config.clickhouse_url.is_some() {
        format!("ClickHouse database {}", config.clickhouse_database)
    } else {
        format!("the data dir {}", config.data_dir.display())
    };
    eprintln!("codelink migrate: building the rollups of {target}");
    let mut bar = Bar::new(std::io::stderr().is_terminal());
    // The secret only signs scan tokens, which migrating does not do.
    migration::run(&config.analytics(b"")?, |p| bar.show(&p)).await?;
    bar.finish();
    eprintln!("codelink migrate: done");
    Ok(())
}

/// One line that updates in place on a terminal; otherwise a line per tenth.
struct Bar {
    tty: bool,
    last_tenth: Option<u64>,
}

impl Bar {
    fn new(tty: bool) -> Self {
        Self {
            tty,
            last_tenth: None,
        }
    }

    fn show(&mut self, p: &Progress) {
        let (what, unit, done, total) = match *p {
            Progress::Embedded { done, total } => ("embedded store", "entries", done, total),
            Progress::ClickHouse { done, total } => ("ClickHouse", "days", done, total),
        };
        if total == 0 {
            eprintln!("  {what}: nothing to migrate");
            return;
        }
        let percent = done * 100 / total;
        let line = format!("  {what}: {done}/{total} {unit} ({percent}%)");
        if self.tty {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r{line}\x1b[K");
            let _ = err.flush();
        } else if self.last_tenth != Some(percent / 10) || done == total {
            self.last_tenth = Some(percent / 10);
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
