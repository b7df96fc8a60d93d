//! `rapport import`: files into a store, with a progress bar on a terminal.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use rapport_core::{AnyStore, Ledger};
use rapport_import::{Format, ImportError, Importer, Mapping, Progress};

use crate::outputs::Protected;
use crate::{Failure, InputFormat, Out, fail};

/// How `rapport import` reads its files.
pub(crate) struct ImportSettings {
    pub(crate) format: Option<InputFormat>,
    pub(crate) future_skew: std::time::Duration,
    pub(crate) sort_by_time: bool,
    pub(crate) mapping: Option<Mapping>,
}

pub(crate) fn cmd_import(
    ledger: &Ledger<AnyStore>,
    files: &[PathBuf],
    settings: &ImportSettings,
    skip_invalid: Option<&Path>,
    protected: &Protected,
) -> Result<(), Failure> {
    let ImportSettings { format, future_skew, sort_by_time, mapping } = settings;
    let (future_skew, sort_by_time) = (*future_skew, *sort_by_time);
    // Asked for, or by the file's name.
    let format_of = |file: &Path| match format {
        Some(InputFormat::Csv) => Format::Csv,
        Some(InputFormat::Jsonl) => Format::Jsonl,
        None if file.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")) => Format::Csv,
        None => Format::Jsonl,
    };
    let mut rejects = match skip_invalid {
        Some(p) => Some(std::io::BufWriter::new(protected.create("--skip-invalid", p)?)),
        None => None,
    };
    let mut out = Out::new();
    for file in files {
        let bar = progress_bar(file);
        let mut on_progress = |p: Progress| {
            if let Some(b) = &bar {
                match p {
                    Progress::Validating { bytes } => {
                        b.set_message("validating");
                        b.set_position(bytes);
                    }
                    Progress::Appending { events } => b.set_message(format!("appended {events}")),
                }
            }
        };
        let mut importer = Importer::new(ledger)
            .format(format_of(file))
            .skip_invalid(skip_invalid.is_some())
            .future_skew(future_skew)
            .sort_by_time(sort_by_time)
            .on_progress(&mut on_progress);
        if let Some(m) = mapping {
            importer = importer.mapping(m.clone());
        }
        if let Some(w) = rejects.as_mut() {
            importer = importer.rejects(w);
        }
        let result = if file.as_os_str() == "-" {
            let mut once = Some(std::io::stdin());
            importer.reader("-", || {
                once.take().ok_or_else(|| {
                    std::io::Error::other("stdin is larger than the in-memory buffer; import a file instead")
                })
            })
        } else {
            importer.file(file)
        };
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        match result {
            Ok(report) => out.line(format_args!("{}", report.summary()))?,
            Err(e @ ImportError::Invalid { .. }) => return Err(fail(3, e.into())),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(mut w) = rejects {
        w.flush().context("writing the rejects file")?;
        w.get_ref().sync_all().context("writing the rejects file")?;
    }
    out.finish()
}

fn progress_bar(file: &Path) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {bytes}/{total_bytes} {eta}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}
