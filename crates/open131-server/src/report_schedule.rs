//! The reports' daily schedule (issue 14): once a project's Moscow day is
//! over (on the project's own clock), its payouts and payments registers of
//! that day are written to `<reports dir>/<project>/payouts|payments/`, and
//! on the first of a month the acts of the month before to
//! `<reports dir>/<project>/acts/`; each is then e-mailed to the project's
//! address when one is configured, as the bank e-mails its registers.
//!
//! Each report is claimed in the store with a lease on the real clock
//! ([`open131_store::MetaStore::claim_report`]) and marked done once written
//! and sent: of several nodes one writes it, and a report whose node died or
//! whose mail failed is taken again once the lease runs out. (A node that
//! sends the mail and then cannot mark it done, or that takes longer than
//! the lease, lets it be sent twice: at least once, as webhooks are.)
//!
//! Decided where the issue is silent [INF]: only the day just over is
//! written (a node that was down for days leaves the days it missed to
//! `open131 reports`); a register over [`REPORT_ZIP_MIN_BYTES`] is zipped, as
//! the bank zips large files; the mail goes over plain SMTP (a relay on the
//! operator's network; no TLS, no login).

use std::path::{Path, PathBuf};

use open131_domain::dates::moscow_today;
use open131_domain::reports::{self as reports_domain, Register};
use tokio::sync::watch;

use crate::app::App;
use crate::reports::{self, Format};
use crate::worker::Pace;

/// How long one node holds a report it writes, in seconds.
pub const REPORT_LEASE_S: i64 = 600;
/// How often the schedule looks for reports due, in seconds.
pub const REPORT_ROUND_S: u64 = 60;
/// A register file larger than this is replaced by a zip holding it.
pub const REPORT_ZIP_MIN_BYTES: u64 = 10 * 1024 * 1024;
/// The longest one SMTP exchange may take, in seconds.
pub const SMTP_TIMEOUT_S: u64 = 30;

/// Where the reports are e-mailed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportsMail {
    /// The SMTP relay: host and port.
    pub smtp: (String, u16),
    /// The sender, e.g. `open131 <reports@open131.example>`.
    pub from: String,
    /// Each project's address.
    pub to: Vec<(String, String)>,
}

impl ReportsMail {
    /// Refuses a sender or an address the mail could not carry (checked at start, not at the first send).
    pub fn check(&self) -> Result<(), String> {
        let addresses = std::iter::once(("the sender", self.from.as_str()))
            .chain(self.to.iter().map(|(project, address)| (project.as_str(), address.as_str())));
        for (whose, address) in addresses {
            address.parse::<lettre::message::Mailbox>().map_err(|e| format!("{whose}'s address {address:?}: {e}"))?;
        }
        Ok(())
    }

    fn address_of(&self, project: &str) -> Option<&str> {
        self.to.iter().find(|(p, _)| p == project).map(|(_, a)| a.as_str())
    }
}

/// One scheduled report.
#[derive(Debug, Clone, Copy)]
enum Job {
    Day(Register, time::Date),
    Act(Register, (i32, time::Month)),
}

impl Job {
    /// Its name among the project's reports (the claim's key).
    fn key(self) -> String {
        match self {
            Self::Day(r, day) => format!("{}:{day}", r.as_str()),
            Self::Act(r, (year, month)) => format!("act:{}:{year}-{:02}", r.as_str(), u8::from(month)),
        }
    }

    fn subject(self, project: &str) -> String {
        match self {
            Self::Day(Register::Payouts, day) => format!("Реестр выплат {project} за {day}"),
            Self::Day(Register::Payments, day) => format!("Реестр платежей {project} за {day}"),
            Self::Act(_, (year, month)) => format!("Акт {project} за {year}-{:02}", u8::from(month)),
        }
    }
}

/// The worker: a round every [`REPORT_ROUND_S`]; nothing without a reports folder.
pub async fn run_worker(app: App, stop: watch::Receiver<bool>) {
    if app.config.reports_dir.is_none() {
        return;
    }
    let idle = std::time::Duration::from_secs(REPORT_ROUND_S);
    // What this node finished: not claimed again every round (a claim is a write).
    let finished = std::sync::Arc::new(tokio::sync::Mutex::new(Finished::new()));
    crate::worker::run_loop("reports", stop, None, || {
        let (app, finished) = (app.clone(), finished.clone());
        async move {
            if let Err(e) = write_due(&app, &mut *finished.lock().await).await {
                tracing::warn!(error = %e, "the reports' round failed; the next one tries again");
            }
            Pace::Idle(idle)
        }
    })
    .await;
}

/// The reports (project, key) this node wrote and finished, among those
/// still due: the store has them done, so asking again is a wasted write.
pub type Finished = std::collections::HashSet<(String, String)>;

/// Writes (and sends) every report due now that no node has written;
/// how many it wrote. `finished` remembers the ones it finished, so later
/// rounds skip them; it keeps only reports still due.
pub async fn write_due(app: &App, finished: &mut Finished) -> anyhow::Result<usize> {
    let Some(root) = app.config.reports_dir.clone() else { return Ok(0) };
    let mut written = 0;
    // The finished reports still due this round: what `finished` becomes.
    let mut due = Finished::new();
    for project in app.store.projects().await? {
        let today = moscow_today(app.now_for(&project.id).await);
        let Some(day) = today.previous_day() else { continue };
        let mut jobs = vec![Job::Day(Register::Payouts, day), Job::Day(Register::Payments, day)];
        if today.day() == 1 {
            jobs.extend([Register::Payouts, Register::Payments].map(|r| Job::Act(r, (day.year(), day.month()))));
        }
        for job in jobs {
            let name = (project.id.clone(), job.key());
            if finished.contains(&name) {
                due.insert(name);
                continue;
            }
            // One report's failure (a mail refused, a full disk) holds up no other.
            match run(app, &root, &project.id, job).await {
                Ok(true) => {
                    written += 1;
                    due.insert(name);
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(project = %project.id, report = %job.key(), error = %e,
                    "a report failed; taken again when its lease ends"),
            }
        }
    }
    *finished = due;
    Ok(written)
}

/// Claims, writes, sends and finishes one report; `false` when another
/// node holds it or it is done.
async fn run(app: &App, root: &Path, project: &str, job: Job) -> anyhow::Result<bool> {
    let (key, real) = (job.key(), app.clock.now());
    let lease_until = real + time::Duration::seconds(REPORT_LEASE_S);
    if !app.store.claim_report(project, &key, real, lease_until).await? {
        return Ok(false);
    }
    let store = app.store.as_ref();
    let path = match job {
        Job::Day(register, day) => {
            let dir = root.join(reports_domain::safe_name(project)).join(register.as_str());
            let (path, _) = reports::write_day(store, &dir, project, register, day, Format::Csv).await?;
            zipped_if_large(&path)?
        }
        Job::Act(register, month) => {
            let dir = root.join(reports_domain::safe_name(project)).join("acts");
            reports::write_act(store, &dir, project, register, month).await?
        }
    };
    tracing::info!(project, report = %key, path = %path.display(), "report written");
    if let Some(mail) = &app.config.reports_mail {
        if let Some(to) = mail.address_of(project) {
            send(mail, to, &job.subject(project), &path).await?;
            tracing::info!(project, report = %key, "report e-mailed");
        }
    }
    app.store.finish_report(project, &key).await?;
    Ok(true)
}

/// `path` itself, or, past [`REPORT_ZIP_MIN_BYTES`], a zip beside it that
/// replaces it.
fn zipped_if_large(path: &Path) -> anyhow::Result<PathBuf> {
    use open131_store::layout::{AtomicFile, FileMode};
    if std::fs::metadata(path)?.len() <= REPORT_ZIP_MIN_BYTES {
        return Ok(path.to_path_buf());
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let zipped = path.with_file_name(format!("{name}.zip"));
    let mut out = AtomicFile::create(&zipped, FileMode::Default)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(out.file()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file(name, options)?;
    std::io::copy(&mut std::fs::File::open(path)?, &mut zip)?;
    zip.finish()?.into_inner().map_err(|e| e.into_error())?;
    out.commit()?;
    std::fs::remove_file(path)?;
    Ok(zipped)
}

/// E-mails `path` as an attachment.
async fn send(mail: &ReportsMail, to: &str, subject: &str, path: &Path) -> anyhow::Result<()> {
    use lettre::message::{header::ContentType, Attachment, MultiPart, SinglePart};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let kind = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => "text/csv",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        _ => "application/octet-stream",
    };
    let bytes = std::fs::read(path)?;
    let attachment = Attachment::new(name).body(bytes, ContentType::parse(kind)?);
    let message = Message::builder().from(mail.from.parse()?).to(to.parse()?).subject(subject).multipart(
        MultiPart::mixed().singlepart(SinglePart::plain(format!("{subject}: во вложении."))).singlepart(attachment),
    )?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(mail.smtp.0.as_str())
        .port(mail.smtp.1)
        .timeout(Some(std::time::Duration::from_secs(SMTP_TIMEOUT_S)))
        .build();
    transport.send(message).await?;
    Ok(())
}
