//! Command-line surface. Admin commands open the store directly (the SQLite
//! database of `--data-dir`, or the PostgreSQL database of `--database-url`),
//! so they work while servers run on it; servers see their changes on the next
//! request, or within the project cache's TTL.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use open131_client::KycClient;
use open131_domain::allowlist::IpAllowlist;
use open131_domain::fx::{FxRate, CONVERTIBLE, FUNDING_CURRENCY};
use open131_domain::ledger::Book;
use open131_domain::npd::TaxStatus;
use open131_domain::npd_link::LinkEvent;
use open131_domain::settings::{CaptureMode, FeeRate, KycMode, MethodSet, NameSet, WebhookNaming};
use open131_domain::webhook_faults::WebhookFaults;
use open131_server::config::{DATA_DIR_DEFAULT, LISTEN_DEFAULT};
use open131_server::{demo, App, Config, SystemClock};
use open131_store::layout::DataDir;
use open131_store::{Location, Store};
use open131_wire::sign::{SigningKey, VerifyingKey};
use time::OffsetDateTime;

#[derive(Parser, Debug)]
#[command(name = "open131", version, about = "A self-hosted Bank 131 partner API server")]
pub struct Args {
    /// Data directory: the SQLite database (unless --database-url is given),
    /// the demo key, the registry indexes.
    #[arg(long, global = true, env = "OPEN131_DATA_DIR", default_value = DATA_DIR_DEFAULT)]
    pub data_dir: PathBuf,
    /// PostgreSQL database shared by every node, e.g. postgres://open131@db:5432/open131.
    /// Without it the embedded SQLite database in the data directory is used.
    #[arg(long, global = true, env = "OPEN131_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Log lines as text (the default) or as JSON objects, one per line,
    /// each with the fields of its request (`request_id`, surface, method).
    #[arg(long, global = true, env = "OPEN131_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written (to stderr).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve {
        #[arg(long, env = "OPEN131_LISTEN", default_value = LISTEN_DEFAULT)]
        listen: std::net::SocketAddr,
        /// How long a new check stays pending: `0`, `500ms`, `2s`, `5m`, `1h` (bare number = seconds).
        #[arg(long, env = "OPEN131_KYC_DELAY", default_value = "2s", value_parser = parse_duration)]
        kyc_delay: Duration,
        /// Sandbox provider: time from confirmation to a payout's result.
        #[arg(long, env = "OPEN131_PAYOUT_DELAY", default_value = "1s", value_parser = parse_duration)]
        payout_delay: Duration,
        /// How long a webhook claimed by a node stays reserved for it (min
        /// 60s); a dead node's deliveries are taken over sooner, once it is
        /// known dead (README, Scale out): this is the backstop.
        #[arg(long, env = "OPEN131_WEBHOOK_LEASE", default_value = "120s", value_parser = parse_duration)]
        webhook_lease: Duration,
        /// The bank's private key (PEM) that signs webhooks; by default the one
        /// kept in the database, created by the first node to start.
        #[arg(long, env = "OPEN131_BANK_KEY")]
        bank_key: Option<PathBuf>,
        /// The address customers' browsers reach this server at (3-D Secure
        /// pages), e.g. `https://open131.example`; by default the listening address.
        #[arg(long, env = "OPEN131_PUBLIC_URL", value_parser = parse_public_url)]
        public_url: Option<String>,
        /// Also serve `GET /metrics` here without the admin token (bind it
        /// where only the scraper reaches it); the main address serves it
        /// behind the admin token either way.
        #[arg(long, env = "OPEN131_METRICS_LISTEN")]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Requests of each project kept in memory for the inspector's
        /// request log (bodies masked when shown); 0 keeps none.
        #[arg(long, env = "OPEN131_REQUEST_LOG", default_value_t = open131_server::request_log::REQUEST_LOG_ENTRIES_DEFAULT)]
        request_log: usize,
        #[command(flatten)]
        reports: ReportsArgs,
    },
    /// Apply the database migrations and exit (servers also apply them at start).
    Migrate,
    /// Print the bearer token of the admin endpoints (shared by every node).
    AdminToken,
    /// Project wallets.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Exchange rates for foreign-currency payouts (roubles per unit).
    #[command(subcommand)]
    Rates(RatesCommand),
    /// Card payments: forced outcomes the bank's side decides.
    #[command(subcommand)]
    Payments(PaymentsCommand),
    /// The webhook outbox.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// A project's clock (virtual time): everything of the project due by its
    /// new time fires at once (a running server within a second).
    #[command(subcommand)]
    Clock(ClockCommand),
    /// The bank's daily registers and monthly acts, written from the ledger.
    #[command(subcommand)]
    Reports(ReportsCommand),
    /// The MVD invalid-passports registry.
    #[command(subcommand)]
    Registry(crate::registry_cli::RegistryCommand),
    /// The taxpayer (INN to passport) registry.
    #[command(subcommand)]
    Taxpayers(crate::registry_cli::TaxpayersCommand),
    /// The self-employed (NPD): what the tax service knows, and its app's answers.
    #[command(subcommand)]
    Npd(NpdCommand),
    /// Manage partner projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Key utilities.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Passport verification as a partner would call it.
    #[command(subcommand)]
    Kyc(KycCommand),
    /// Call a main-API method as a partner does (signed, with an idempotency
    /// key for a change, retried where safe), through the Rust SDK; prints
    /// `HTTP <status> <body>`. By default as the demo project with its key
    /// from the data directory.
    Call {
        /// The method's path, e.g. `session/status` or `session/init/payout`.
        method: String,
        /// The JSON body, or `@file` to read it from a file (default `{}`).
        #[arg(default_value = "{}")]
        body: String,
        #[arg(long, default_value = open131_server::demo::DEMO_PROJECT_ID)]
        project: String,
        /// The project's private key (PEM); by default the data directory's demo key.
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long, default_value = "http://127.0.0.1:8131")]
        url: String,
        /// `v1` or `v2` (the v2 names: `payout_details`, `payout_list`, …).
        #[arg(long = "api", default_value = "v1", value_parser = ["v1", "v2"])]
        version: String,
        /// The idempotency key of a change (by default a new one).
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Load benchmarks against a running server.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    /// Register a project with its first public key.
    Add {
        id: String,
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Register one more public key for a project (key rotation).
    AddKey {
        id: String,
        #[arg(long)]
        public_key: PathBuf,
    },
    /// List projects and their keys.
    List,
    /// Change a project's settings.
    Set {
        id: String,
        /// Where webhooks are POSTed (`none` removes it).
        #[arg(long)]
        webhook_url: Option<String>,
        /// Skip the confirmation step (the bank's single-request payouts).
        #[arg(long)]
        auto_confirm: Option<bool>,
        /// How long a payout waits for `session/confirm`, e.g. `24h`.
        #[arg(long, value_parser = parse_duration)]
        confirm_timeout: Option<Duration>,
        /// Main-API methods the project may call: `*` or a comma-separated list.
        #[arg(long, value_parser = |s: &str| MethodSet::parse(s).map_err(|e| e.to_string()))]
        methods: Option<MethodSet>,
        /// `sandbox` or `registry`.
        #[arg(long, value_parser = |s: &str| KycMode::parse(s).ok_or("must be sandbox or registry"))]
        kyc_mode: Option<KycMode>,
        /// Source addresses allowed for the project: `*` or e.g. `127.0.0.1,10.0.0.0/8`.
        #[arg(long, value_parser = IpAllowlist::parse)]
        allowed_ips: Option<IpAllowlist>,
        /// API version naming sessions in webhooks: `session` (the one that created it), `v1` or `v2`.
        #[arg(long, value_parser = |s: &str| WebhookNaming::parse(s).ok_or("must be session, v1 or v2"))]
        webhook_naming: Option<WebhookNaming>,
        /// Allowed `X-PARTNER-SUBMERCHANT` values: `*`, `-` (none) or a comma-separated list.
        #[arg(long, value_parser = |s: &str| NameSet::parse(s).map_err(|e| e.to_string()))]
        submerchants: Option<NameSet>,
        /// Authorized card payments: `auto` (captured at once) or `hold` (wait for session/capture).
        #[arg(long, value_parser = |s: &str| CaptureMode::parse(s).ok_or("must be auto or hold"))]
        capture: Option<CaptureMode>,
        /// How long a held payment waits for `session/capture`, e.g. `5d` or `2h`.
        #[arg(long, value_parser = parse_duration)]
        capture_timeout: Option<Duration>,
        /// The bank's fee on captured card payments: e.g. `2.5%` or `250bp`.
        #[arg(long, value_parser = |s: &str| FeeRate::parse(s).ok_or("must be a percentage like 2.5% or basis points like 250bp, at most 100%"))]
        payment_fee: Option<FeeRate>,
        /// Contractors split payments may pay (`revenue_split_info[].contractor_alias`): `*`, `-` (none) or a comma-separated list.
        #[arg(long, value_parser = |s: &str| NameSet::parse(s).map_err(|e| e.to_string()))]
        contractors: Option<NameSet>,
        /// Origins whose pages may show the project's widgets: `*` (any, the default) or e.g. `https://shop.example,http://localhost:3000`.
        #[arg(long, value_parser = |s: &str| NameSet::parse(s).map_err(|e| e.to_string()))]
        widget_origins: Option<NameSet>,
    },
}

#[derive(Subcommand, Debug)]
pub enum WalletCommand {
    /// Add money to a project's wallet (amount in minor units, e.g. kopecks).
    Topup {
        project: String,
        amount: i64,
        #[arg(long, default_value = "rub")]
        currency: String,
        /// Which account: main (the payout balance), nominal (escrow) or settlement.
        #[arg(long, default_value = "main", value_parser = |s: &str| Book::parse(s).ok_or("main, nominal or settlement"))]
        book: Book,
    },
    /// Show a project's wallets, with its nominal and settlement account numbers.
    Balance { project: String },
}

#[derive(Subcommand, Debug)]
pub enum PaymentsCommand {
    /// Open a bank-initiated chargeback of a captured card payment (all that
    /// is left of it, or --amount minor units); `payment_refunded` follows.
    Chargeback {
        project: String,
        session: String,
        #[arg(long)]
        amount: Option<i64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum NpdCommand {
    /// Say what the tax service knows of a person (over the sandbox's rules).
    Set {
        /// The person's INN (12 digits).
        inn: String,
        /// self_employed, not_self_employed or unknown.
        #[arg(long, value_parser = |s: &str| TaxStatus::parse(s).ok_or("must be self_employed, not_self_employed or unknown"))]
        status: TaxStatus,
        /// The name on file (npd/taxpayer/check_personal_info compares it).
        #[arg(long)]
        name: Option<String>,
        /// The phone on file.
        #[arg(long)]
        phone: Option<String>,
        /// Every request about the person fails with npd_service_internal_error.
        #[arg(long)]
        service_error: bool,
        /// How many registrations of each receipt the tax service refuses
        /// before it accepts one (the receipt waits, pending, for its retries).
        #[arg(long, default_value_t = 0)]
        receipt_refusals: u32,
    },
    /// Import the self-employed register (CSV: inn,status,linked,full_name,phone);
    /// a running server on the same data directory swaps to it within a second.
    Import { file: std::path::PathBuf },
    /// Confirm a waiting linking request in the tax service's app, for the person.
    ConfirmLink { project: String, inn: String },
    /// Decline a waiting linking request, for the person.
    DeclineLink { project: String, inn: String },
    /// End a person's link to the bank for a project.
    Unlink { project: String, inn: String },
}

#[derive(Subcommand, Debug)]
pub enum RatesCommand {
    /// Set the rate of a currency: payouts in it are then funded in roubles at it.
    Set {
        currency: String,
        /// Roubles per unit, e.g. 92.50.
        #[arg(value_parser = |s: &str| FxRate::parse(s).map_err(|e| e.to_string()))]
        rate: FxRate,
    },
    /// Remove a rate: payouts in that currency are funded from its own wallet again.
    Unset { currency: String },
    /// List the rates.
    List,
}

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Every delivery with its attempts, response codes and next retry.
    List {
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        session: Option<String>,
        /// Show each attempt too.
        #[arg(long)]
        attempts: bool,
    },
    /// Send a webhook again (the running server picks it up within a second).
    Resend { id: i64 },
    /// Make every pending webhook due now instead of at its next retry.
    RetryPending {
        #[arg(long)]
        project: Option<String>,
    },
    /// Make a project's webhook deliveries misbehave as a network does (a
    /// test stand's faults; every webhook is still delivered at least once).
    /// Without any option the project's faults are removed.
    Faults {
        project: String,
        /// Hold each webhook's first delivery this long: `500ms`, `2s`.
        #[arg(long, value_parser = parse_duration)]
        delay: Option<Duration>,
        /// Send this share of deliveries twice (0 to 1).
        #[arg(long)]
        duplicate: Option<f64>,
        /// Hold each first delivery up to 2 s more (a fixed time per webhook):
        /// webhooks made together arrive in another order.
        #[arg(long)]
        reorder: bool,
        /// Lose the first N attempts of each webhook before the receiver sees
        /// them (failed attempts, retried on the usual schedule).
        #[arg(long)]
        drop_first: Option<u32>,
        /// Send the webhooks a request causes before its response.
        #[arg(long)]
        before_response: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClockCommand {
    /// Print the project's now and how far it runs ahead.
    Show { project: String },
    /// Move the project's clock forward: `90s`, `30m`, `24h`, `2d`.
    Advance {
        project: String,
        #[arg(value_parser = parse_duration)]
        by: Duration,
    },
    /// Move the project's clock forward to a time (RFC 3339, e.g. 2027-01-01T00:00:00Z).
    Set { project: String, at: String },
    /// Back to real time (what was scheduled on the project's time keeps its times).
    Reset { project: String },
}

/// The reports' daily schedule (`serve`).
#[derive(clap::Args, Debug)]
pub struct ReportsArgs {
    /// Write each project's daily registers and monthly acts here
    /// (`<dir>/<project>/payouts|payments|acts/`) once its Moscow day is over.
    #[arg(long, env = "OPEN131_REPORTS_DIR")]
    reports_dir: Option<PathBuf>,
    /// E-mail them through this SMTP relay (`host:port`, plain SMTP).
    #[arg(long, env = "OPEN131_REPORTS_SMTP", requires = "reports_dir")]
    reports_smtp: Option<String>,
    /// The mails' sender.
    #[arg(long, env = "OPEN131_REPORTS_FROM", default_value = "open131 <reports@localhost>")]
    reports_from: String,
    /// A project's address, `project=address` (repeat for each project).
    #[arg(long = "reports-mail", requires = "reports_smtp")]
    reports_mail: Vec<String>,
}

impl ReportsArgs {
    fn mail(&self) -> anyhow::Result<Option<open131_server::report_schedule::ReportsMail>> {
        let Some(smtp) = &self.reports_smtp else { return Ok(None) };
        let (host, port) = smtp.rsplit_once(':').context("--reports-smtp is host:port")?;
        let port = port.parse().context("--reports-smtp's port is a number")?;
        let to = self
            .reports_mail
            .iter()
            .map(|pair| {
                let (project, address) = pair.split_once('=').context("--reports-mail is project=address")?;
                Ok((project.to_string(), address.to_string()))
            })
            .collect::<anyhow::Result<_>>()?;
        let mail = open131_server::report_schedule::ReportsMail {
            smtp: (host.to_string(), port),
            from: self.reports_from.clone(),
            to,
        };
        mail.check().map_err(|why| anyhow::anyhow!("--reports-mail: {why}"))?;
        Ok(Some(mail))
    }
}

#[derive(Subcommand, Debug)]
pub enum ReportsCommand {
    /// The payouts register of a Moscow day (CSV or XLSX).
    Payouts(DayReport),
    /// The payments register of a Moscow day (CSV or XLSX).
    Payments(DayReport),
    /// The monthly act (PDF) of the payouts or of the payments.
    Act {
        project: String,
        /// The month, YYYY-MM.
        #[arg(long, value_parser = parse_month)]
        month: (i32, time::Month),
        #[arg(long, value_parser = ["payouts", "payments"])]
        register: String,
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

/// Which register of a day to write, and where.
#[derive(clap::Args, Debug)]
pub struct DayReport {
    project: String,
    /// The Moscow day, YYYY-MM-DD.
    #[arg(long, value_parser = parse_day)]
    date: time::Date,
    #[arg(long, default_value = "csv", value_parser = ["csv", "xlsx"])]
    format: String,
    /// The folder the file goes to.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

/// `YYYY-MM-DD`.
fn parse_day(text: &str) -> Result<time::Date, String> {
    time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| "must be a date, YYYY-MM-DD".into())
}

/// `YYYY-MM`.
fn parse_month(text: &str) -> Result<(i32, time::Month), String> {
    let day = parse_day(&format!("{text}-01")).map_err(|_| "must be a month, YYYY-MM".to_string())?;
    Ok((day.year(), day.month()))
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Print the bank's public key (PEM): partners verify webhooks with it.
    BankPublic,
    /// Make the card vault's key file in the data directory (if it has none)
    /// and print its path: copy that file to every node sharing a PostgreSQL
    /// database before cards are tokenized.
    VaultInit,
    /// Add a staged key to the vault's key file (it opens, it does not seal
    /// yet): nodes sharing a database get the file before the rotation.
    VaultStage,
    /// Make the staged key (on SQLite, without one, a new key) the one new
    /// items are sealed with, and seal every card and account again under it.
    /// The older keys stay in the file, so what they sealed still opens.
    VaultRotate,
    /// Write a new RSA-2048 private key (PKCS#8 PEM) and its public key.
    Generate {
        /// Where to write the private key.
        private_key: PathBuf,
        /// Where to write the public key (default: `<private_key>.pub`).
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KycCommand {
    /// Send a check for the person in a JSON file (the v1.1 `payload` object); prints its id.
    Check {
        #[arg(long)]
        project: String,
        /// The project's private key (PEM).
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:8131")]
        url: String,
        person: PathBuf,
    },
    /// Force a pending check's final outcome (on the data directory, like other admin commands).
    Resolve {
        id: String,
        #[arg(long)]
        project: String,
        /// ok, passport_invalid, passport_not_found, inn_mismatch or invalid_sign.
        #[arg(long = "as")]
        outcome: String,
    },
    /// Print the state of a check.
    Status {
        id: String,
        #[arg(long)]
        project: String,
        /// Unused by the status call (it is not signed); accepted for symmetry with `check`.
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long, default_value = "http://127.0.0.1:8131")]
        url: String,
    },
}

/// Parses `0`, `250ms`, `2s`, `5m`, `1h`; a bare number is seconds.
/// An absolute http(s) URL without a query, as `--public-url` takes it.
fn parse_public_url(text: &str) -> Result<String, String> {
    let ok = (text.starts_with("http://") || text.starts_with("https://"))
        && !text.contains(['?', '#'])
        && !text.chars().any(char::is_whitespace);
    ok.then(|| text.trim_end_matches('/').to_string()).ok_or_else(|| "must be an http(s) URL without a query".into())
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 2s or 500ms"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        _ => return Err(format!("unknown unit {unit:?} (use ms, s, m, h or d)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

/// The store the global flags name: PostgreSQL with `--database-url`, else
/// SQLite in `--data-dir`.
pub fn location(args: &Args) -> anyhow::Result<Location> {
    Ok(Location::choose(args.database_url.as_deref(), &args.data_dir)?)
}

pub async fn open_store(location: &Location) -> anyhow::Result<Arc<dyn Store>> {
    let described = match location {
        Location::Sqlite(dir) => format!("the SQLite store in {}", dir.root().display()),
        Location::Postgres(url) => format!("the PostgreSQL database {url}"),
    };
    open131_store::open(location).await.with_context(|| format!("opening {described}"))
}

fn read_public_key(path: &Path) -> anyhow::Result<VerifyingKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    VerifyingKey::from_pem(&text).with_context(|| format!("{} is not a usable RSA key", path.display()))
}

fn read_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SigningKey::from_pem(&text).with_context(|| format!("{} is not a usable RSA private key", path.display()))
}

fn print_answer(answer: &open131_client::Answer) -> anyhow::Result<()> {
    println!("HTTP {} {}", answer.http_status, serde_json::to_string(&answer.body)?);
    Ok(())
}

pub async fn execute(args: Args) -> anyhow::Result<()> {
    let location = location(&args)?;
    match args.command {
        Command::Serve {
            listen,
            kyc_delay,
            payout_delay,
            webhook_lease,
            bank_key,
            public_url,
            metrics_listen,
            request_log,
            reports,
        } => {
            let node = Node { location, data_dir: DataDir::new(&args.data_dir), bank_key };
            let delays = Delays { kyc: kyc_delay, payout: payout_delay, webhook_lease };
            let features = Features { public_url, request_log, reports };
            serve(node, Listen { api: listen, metrics: metrics_listen }, delays, features).await
        }
        Command::Migrate => {
            open_store(&location).await?;
            println!("the {} database is at the current schema", location.backend().as_str());
            Ok(())
        }
        Command::AdminToken => {
            let store = open_store(&location).await?;
            let dir = DataDir::new(&args.data_dir);
            let sqlite_dir = (location.backend() == open131_store::Backend::Sqlite).then_some(&dir);
            println!("{}", demo::ensure_admin_token(store.as_ref(), sqlite_dir).await?);
            Ok(())
        }
        Command::Keys(KeysCommand::BankPublic) => {
            let store = open_store(&location).await?;
            let key = demo::ensure_bank_key(store.as_ref(), &DataDir::new(&args.data_dir), None).await?;
            print!("{}", key.verifying_key()?.to_pem());
            Ok(())
        }
        Command::Keys(KeysCommand::VaultInit) => {
            let dir = DataDir::new(&args.data_dir);
            open131_server::vault::Vault::open_or_create(&dir, true)?;
            println!("{}", dir.vault_key().display());
            Ok(())
        }
        Command::Keys(KeysCommand::VaultStage) => {
            let dir = DataDir::new(&args.data_dir);
            open131_server::vault::Vault::stage_key(&dir)?;
            println!(
                "staged a key in {}: copy it to every node, then run keys vault-rotate",
                dir.vault_key().display()
            );
            Ok(())
        }
        Command::Keys(KeysCommand::VaultRotate) => {
            let dir = DataDir::new(&args.data_dir);
            let store = open_store(&location).await?;
            // Nodes sharing PostgreSQL must all hold a key before anything is sealed with it.
            let single_node = location.backend() == open131_store::Backend::Sqlite;
            let vault = open131_server::vault::Vault::rotate(&dir, single_node)?;
            let moved = open131_server::vault::reseal_all(store.as_ref(), &vault).await?;
            println!(
                "new key {} leads {}; {moved} items sealed again",
                vault.current_key_id(),
                dir.vault_key().display()
            );
            Ok(())
        }
        Command::Wallet(cmd) => wallet(&location, cmd).await,
        Command::Rates(cmd) => rates(&location, cmd).await,
        Command::Payments(PaymentsCommand::Chargeback { project, session, amount }) => {
            // The engine applies it, as for a request; a running server delivers its webhook.
            let dir = DataDir::new(&args.data_dir);
            let store = open_store(&location).await?;
            let bank_key = demo::ensure_bank_key(store.as_ref(), &dir, None).await?;
            let app = App::new(Config::new(dir.root().to_path_buf()), store, Arc::new(SystemClock), bank_key);
            let done = open131_server::admin::force_chargeback(&app, &project, &session, amount).await?;
            let refund = done.payment().and_then(|p| p.refunds.last());
            let (id, amount) = refund.map(|r| (r.id.as_str(), r.amount)).unwrap_or_default();
            println!("chargeback {id} of {amount} opened on session {session}");
            Ok(())
        }
        Command::Npd(cmd) => npd(&args.data_dir, &location, cmd).await,
        Command::Registry(cmd) => crate::registry_cli::registry(&args.data_dir, cmd).await,
        Command::Taxpayers(cmd) => crate::registry_cli::taxpayers(&args.data_dir, cmd).await,
        Command::Kyc(KycCommand::Resolve { id, project, outcome }) => {
            let outcome = open131_domain::kyc::Outcome::parse(&outcome).with_context(|| {
                format!("--as must be one of ok, passport_invalid, passport_not_found, inn_mismatch, invalid_sign (got {outcome:?})")
            })?;
            let id: i64 = id.parse().with_context(|| format!("{id:?} is not a check id"))?;
            let store = open_store(&location).await?;
            let answer = open131_server::admin::resolve_in_store(
                store.as_ref(),
                &project,
                id,
                outcome,
                OffsetDateTime::now_utc(),
            )
            .await?;
            println!("{answer}");
            Ok(())
        }
        Command::Webhooks(cmd) => webhooks(&location, cmd).await,
        Command::Clock(cmd) => clock(&location, cmd).await,
        Command::Reports(cmd) => reports(&location, cmd).await,
        Command::Project(cmd) => project(&location, cmd).await,
        Command::Keys(KeysCommand::Generate { private_key, public_key }) => {
            let key = SigningKey::generate()?;
            let public_path = public_key.unwrap_or_else(|| PathBuf::from(format!("{}.pub", private_key.display())));
            std::fs::write(&private_key, key.to_pkcs8_pem()?)
                .with_context(|| format!("writing {}", private_key.display()))?;
            std::fs::write(&public_path, key.verifying_key()?.to_pem())
                .with_context(|| format!("writing {}", public_path.display()))?;
            println!("private key: {}\npublic key:  {}", private_key.display(), public_path.display());
            Ok(())
        }
        Command::Kyc(KycCommand::Check { project, key, url, person }) => {
            let text = std::fs::read_to_string(&person).with_context(|| format!("reading {}", person.display()))?;
            let payload: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", person.display()))?;
            let client = KycClient::new(&url, &project, read_signing_key(&key)?);
            let answer = client.check(&payload).await?;
            match answer.body.data.as_ref() {
                Some(data) if answer.http_status == 200 => {
                    println!("{}", data.id);
                    if answer.body.error.is_some() {
                        eprintln!("{}", serde_json::to_string(&answer.body)?);
                    }
                    Ok(())
                }
                _ => {
                    print_answer(&answer)?;
                    bail!("the check was not accepted")
                }
            }
        }
        Command::Kyc(KycCommand::Status { id, project, key: _, url }) => {
            // The status call is not signed; a throwaway key satisfies the client type.
            let client = KycClient::new(&url, &project, SigningKey::generate()?);
            print_answer(&client.status(&id).await?)
        }
        Command::Bench(cmd) => crate::bench::run(&location, &args.data_dir, cmd).await,
        Command::Call { method, body, project, key, url, version, idempotency_key } => {
            let key = key.unwrap_or_else(|| DataDir::new(&args.data_dir).demo_key());
            let body = match body.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
                None => body,
            };
            let body: serde_json::Value = serde_json::from_str(&body).context("the body is not JSON")?;
            let client =
                open131_client::MainClient::new(&url, &project, read_signing_key(&key)?).with_version(&version);
            let answer = match idempotency_key {
                Some(k) => client.call_with_key(&method, &body, Some(&k)).await?,
                None => client.call(&method, &body).await?,
            };
            println!("HTTP {} {}", answer.http_status, serde_json::to_string(&answer.body)?);
            if answer.http_status != 200 {
                bail!("the call was refused");
            }
            Ok(())
        }
    }
}

async fn project(location: &Location, cmd: ProjectCommand) -> anyhow::Result<()> {
    let store = open_store(location).await?;
    let now = OffsetDateTime::now_utc();
    match cmd {
        ProjectCommand::Add { id, public_key } => {
            validate_project_id(&id)?;
            let key = read_public_key(&public_key)?;
            if !store.create_project(&id, now).await? {
                bail!("project {id:?} already exists (use `project add-key` to add a key)");
            }
            store.add_project_key(&id, &key.fingerprint(), key.spki_der(), now).await?;
            println!("project {id} added with key {}", key.fingerprint());
        }
        ProjectCommand::AddKey { id, public_key } => {
            let key = read_public_key(&public_key)?;
            if store.add_project_key(&id, &key.fingerprint(), key.spki_der(), now).await? {
                println!("key {} added to project {id}", key.fingerprint());
            } else {
                println!("project {id} already has key {}", key.fingerprint());
            }
        }
        ProjectCommand::Set {
            id,
            webhook_url,
            auto_confirm,
            confirm_timeout,
            methods,
            kyc_mode,
            allowed_ips,
            webhook_naming,
            submerchants,
            capture,
            capture_timeout,
            payment_fee,
            contractors,
            widget_origins,
        } => {
            if let Some(url) = &webhook_url {
                if url != "none" && !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!("--webhook-url must start with http:// or https:// (or be `none`)");
                }
            }
            let change = open131_store::SettingsChange {
                webhook_url: webhook_url.map(|u| (u != "none").then_some(u)),
                auto_confirm,
                confirm_timeout_s: confirm_timeout.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
                methods,
                kyc_mode,
                allowed_ips,
                webhook_naming,
                submerchants,
                capture,
                capture_timeout_s: capture_timeout.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
                payment_fee,
                contractors,
                widget_origins,
                webhook_faults: None,
                clock_offset: None,
            };
            store.set_project_settings(&id, change, now).await?;
            let p = store.project(&id).await?.context("project vanished")?;
            println!("{id}: {:?}", p.settings);
        }
        ProjectCommand::List => {
            for p in store.projects().await? {
                println!("{}\tkyc_mode={}\tkeys={}", p.id, p.settings.kyc_mode, p.keys.len());
                for k in &p.keys {
                    println!("\t{}", k.fingerprint);
                }
            }
        }
    }
    Ok(())
}

/// Project ids travel in a header: printable ASCII without spaces, 1–128 bytes.
fn validate_project_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= open131_server::edge::PROJECT_ID_MAX_BYTES
        && id.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        bail!("project id must be 1-128 printable ASCII characters without spaces");
    }
    Ok(())
}

async fn wallet(location: &Location, cmd: WalletCommand) -> anyhow::Result<()> {
    let store = open_store(location).await?;
    match cmd {
        WalletCommand::Topup { project, amount, currency, book } => {
            let money = open131_domain::payout::Money::new(amount, &currency).map_err(|e| anyhow::anyhow!(e))?;
            if book != Book::Main && money.currency() != FUNDING_CURRENCY {
                bail!("the {} account holds roubles only", book.as_str());
            }
            if store.project(&project).await?.is_none() {
                bail!("no such project: {project}");
            }
            store.topup_book(&project, book, money.currency(), amount, OffsetDateTime::now_utc()).await?;
            println!("topped up {project}'s {} wallet with {amount} {}", book.as_str(), money.currency());
        }
        WalletCommand::Balance { project } => {
            for book in [Book::Nominal, Book::Settlement] {
                let number = open131_domain::books::account_number(&project, book).unwrap_or_default();
                println!("{} account: {number}", book.as_str());
            }
            for w in store.wallets(&project).await? {
                println!(
                    "{}	{}	available={}	reserved={}	paid_out={}	exchanged={}",
                    w.book.as_str(),
                    w.currency,
                    w.available,
                    w.reserved,
                    w.payouts,
                    w.exchange
                );
            }
            for c in store.contractor_wallets(&project).await? {
                println!("{}\t{}\tcontractor={}\tbalance={}", c.book.as_str(), c.currency, c.alias, c.balance);
            }
        }
    }
    Ok(())
}

async fn rates(location: &Location, cmd: RatesCommand) -> anyhow::Result<()> {
    let store = open_store(location).await?;
    let foreign = |currency: &str| {
        let c = currency.to_ascii_lowercase();
        if CONVERTIBLE.contains(&c.as_str()) {
            Ok(c)
        } else {
            Err(anyhow::anyhow!("the bank converts payouts from {}: a rate is for one of them", CONVERTIBLE.join(", ")))
        }
    };
    match cmd {
        RatesCommand::Set { currency, rate } => {
            let currency = foreign(&currency)?;
            store.set_rate(&currency, Some(rate), OffsetDateTime::now_utc()).await?;
            println!("{currency}: {rate} rub");
        }
        RatesCommand::Unset { currency } => {
            let currency = foreign(&currency)?;
            if !store.set_rate(&currency, None, OffsetDateTime::now_utc()).await? {
                bail!("no rate was set for {currency}");
            }
            println!("{currency}: no rate (paid from the {currency} wallet)");
        }
        RatesCommand::List => {
            for (currency, rate) in store.rates().await? {
                println!("{currency}	{rate}");
            }
        }
    }
    Ok(())
}

async fn reports(location: &Location, cmd: ReportsCommand) -> anyhow::Result<()> {
    use open131_domain::reports::Register;
    use open131_server::reports::{self, Format};
    let store = open_store(location).await?;
    let (DayReport { project, date: day, format, out }, register) = match cmd {
        ReportsCommand::Payouts(day) => (day, Register::Payouts),
        ReportsCommand::Payments(day) => (day, Register::Payments),
        ReportsCommand::Act { project, month, register, out } => {
            if store.project(&project).await?.is_none() {
                bail!("no project {project:?}");
            }
            let register = Register::parse(&register).context("the register is payouts or payments")?;
            let path = reports::write_act(store.as_ref(), &out, &project, register, month).await?;
            println!("{}", path.display());
            return Ok(());
        }
    };
    if store.project(&project).await?.is_none() {
        bail!("no project {project:?}");
    }
    let format = Format::parse(&format).context("the format is csv or xlsx")?;
    let (path, totals) = reports::write_day(store.as_ref(), &out, &project, register, day, format).await?;
    println!("{}\t{} rows", path.display(), totals.rows);
    Ok(())
}

async fn clock(location: &Location, cmd: ClockCommand) -> anyhow::Result<()> {
    use open131_server::clock::ClockChange;
    let (project, change) = match cmd {
        ClockCommand::Show { project } => (project, ClockChange::Show),
        ClockCommand::Advance { project, by } => {
            (project, ClockChange::Advance(time::Duration::try_from(by).context("too long a step")?))
        }
        ClockCommand::Set { project, at } => {
            let at = OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("{at:?} is not an RFC 3339 time"))?;
            (project, ClockChange::Set(at))
        }
        ClockCommand::Reset { project } => (project, ClockChange::Reset),
    };
    let store = open_store(location).await?;
    let clock =
        open131_server::clock::change_project_clock(store.as_ref(), &project, change, OffsetDateTime::now_utc())
            .await
            .with_context(|| format!("project {project}'s clock"))?;
    let ahead = time::Duration::microseconds(clock.offset.us());
    println!(
        "{project}: now {} ({} s ahead of real time)",
        open131_wire::api::timestamp(clock.now),
        ahead.whole_seconds()
    );
    Ok(())
}

async fn webhooks(location: &Location, cmd: WebhooksCommand) -> anyhow::Result<()> {
    let store = open_store(location).await?;
    match cmd {
        WebhooksCommand::List { project, session, attempts } => {
            let filter = open131_store::WebhookFilter { project_id: project, subject_id: session, limit: None };
            println!("id	project	session	type	state	attempts	last_status	next_attempt	last_error");
            for w in store.webhooks(filter).await? {
                let next = if w.state == open131_store::WebhookState::Pending {
                    open131_wire::api::timestamp(w.next_attempt_at)
                } else {
                    "-".into()
                };
                println!(
                    "{}	{}	{}	{}	{}	{}	{}	{}	{}",
                    w.id,
                    w.project_id,
                    w.subject_id,
                    w.kind,
                    w.state.as_str(),
                    w.attempts,
                    w.last_status.map_or("-".into(), |s| s.to_string()),
                    next,
                    w.last_error.as_deref().unwrap_or("-")
                );
                if attempts {
                    for a in store.webhook_attempts(w.id).await? {
                        println!(
                            "	attempt {} at {}: {} ({} ms){}{}",
                            a.attempt,
                            open131_wire::api::timestamp(a.at),
                            a.status.map_or("no response".into(), |s| format!("HTTP {s}")),
                            a.duration_ms,
                            a.error.map(|e| format!(" {e}")).unwrap_or_default(),
                            a.injected.map(|i| format!(" [injected: {i}]")).unwrap_or_default()
                        );
                    }
                }
            }
        }
        WebhooksCommand::Faults { project, delay, duplicate, reorder, drop_first, before_response } => {
            let delay_ms = u64::try_from(delay.unwrap_or_default().as_millis()).unwrap_or(u64::MAX);
            let faults = WebhookFaults::new(
                delay_ms,
                duplicate.unwrap_or(0.0),
                reorder,
                drop_first.unwrap_or(0),
                before_response,
            )?;
            let change = open131_store::SettingsChange { webhook_faults: Some(faults), ..Default::default() };
            store.set_project_settings(&project, change, OffsetDateTime::now_utc()).await?;
            println!("webhook faults of {project}: {faults}");
        }
        WebhooksCommand::RetryPending { project } => {
            let n = store.resend_pending(project.as_deref(), OffsetDateTime::now_utc()).await?;
            println!("{n} pending webhooks are due now");
        }
        WebhooksCommand::Resend { id } => {
            if !store.resend_webhook(id, OffsetDateTime::now_utc()).await? {
                bail!("no webhook {id}, or it is being delivered right now (try again in a moment)");
            }
            println!("webhook {id} is pending again");
        }
    }
    Ok(())
}

/// Where one node keeps what it serves from.
struct Node {
    location: Location,
    data_dir: DataDir,
    bank_key: Option<PathBuf>,
}

/// On SQLite only one server may serve a data directory: the lock is held for
/// the server's life (the OS drops it if the process dies). PostgreSQL nodes
/// share their database and take no lock.
fn lock_sqlite(node: &Node) -> anyhow::Result<Option<std::fs::File>> {
    if node.location.backend() != open131_store::Backend::Sqlite {
        return Ok(None);
    }
    let path = node.data_dir.serve_lock();
    let lock = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    if lock.try_lock().is_err() {
        bail!("another open131 server is already serving {}", node.data_dir.root().display());
    }
    Ok(Some(lock))
}

/// The serve command's timing settings.
struct Delays {
    kyc: Duration,
    payout: Duration,
    webhook_lease: Duration,
}

/// Where the server listens.
struct Listen {
    api: std::net::SocketAddr,
    /// `GET /metrics` without a token, when asked for.
    metrics: Option<std::net::SocketAddr>,
}

/// What a node serves beside the API.
struct Features {
    public_url: Option<String>,
    request_log: usize,
    reports: ReportsArgs,
}

async fn serve(node: Node, listen: Listen, delays: Delays, features: Features) -> anyhow::Result<()> {
    let Features { public_url, request_log: request_log_entries, reports } = features;
    let reports_mail = reports.mail()?;
    let dir = node.data_dir.clone();
    dir.create().with_context(|| format!("creating {}", dir.root().display()))?;
    let lock = lock_sqlite(&node)?;
    let store = open_store(&node.location).await?;
    let demo = demo::ensure_demo(store.as_ref(), &dir, OffsetDateTime::now_utc()).await?;
    let root = dir.root().to_path_buf();
    let registries = tokio::task::spawn_blocking(move || open131_server::registries::Registries::load_at_start(&root))
        .await?
        .map_err(|e| {
            anyhow::anyhow!(
                "refusing to start: {e}. Import the registry again (open131 registry import / taxpayers import / npd import) \
                 or remove the file to run without it."
            )
        })?;
    let sqlite_dir = lock.is_some().then_some(&dir);
    let admin_token = demo::ensure_admin_token(store.as_ref(), sqlite_dir).await?;
    let bank_key = demo::ensure_bank_key(store.as_ref(), &dir, node.bank_key.as_deref()).await?;

    let mut config = Config::new(dir.root().to_path_buf());
    config.listen = listen.api;
    config.kyc_delay = delays.kyc;
    config.payout_processing_delay = delays.payout;
    config.webhook_lease = delays.webhook_lease;
    config.public_url = public_url;
    config.request_log_entries_max = request_log_entries;
    config.reports_dir = reports.reports_dir;
    config.reports_mail = reports_mail;
    // Holding the serve lock proves no other process holds a lease here.
    config.sole_process = lock.is_some();
    let mut app = App::new(config, store, Arc::new(SystemClock), bank_key);
    app.set_registries(Arc::new(registries));
    app.admin_token = Some(admin_token.into());
    let api = listen.api;
    let listener = tokio::net::TcpListener::bind(api).await.with_context(|| format!("binding {api}"))?;
    let local = listener.local_addr()?;
    let base_url = format!("http://{local}");
    let metrics_url = match listen.metrics {
        Some(addr) => Some(serve_metrics(addr, app.clone()).await?),
        None => None,
    };

    let mut out = std::io::stdout().lock();
    match &node.location {
        Location::Sqlite(_) => {
            writeln!(out, "open131 listening on {base_url} (data directory {})", dir.root().display())?
        }
        Location::Postgres(url) => writeln!(out, "open131 listening on {base_url} (database {url})")?,
    }
    match sqlite_dir {
        Some(d) => writeln!(out, "admin token (for /admin/v1/...): {}", d.admin_token().display())?,
        None => writeln!(out, "admin token (for /admin/v1/...): `open131 admin-token` with the same --database-url")?,
    }
    if demo.created {
        writeln!(
            out,
            "created demo project {:?}; its private key is {}",
            demo::DEMO_PROJECT_ID,
            demo.key_path.display()
        )?;
    }
    if let Some(url) = metrics_url {
        writeln!(out, "metrics (no token): {url}{}", open131_server::metrics::PATH)?;
    }
    writeln!(out, "try it:\n{}", demo::example_request(&demo.key, &base_url)?)?;
    out.flush()?;
    drop(out);

    tracing::info!(%local, backend = node.location.backend().as_str(), "serving");
    open131_server::run(listener, app, shutdown_signal()).await?;
    tracing::info!("stopped");
    drop(lock);
    Ok(())
}

/// Serves the metrics alone on `addr` (for as long as the process runs);
/// returns its `http://` address.
async fn serve_metrics(addr: std::net::SocketAddr, app: App) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr} for metrics"))?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, open131_server::metrics::router(app)).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(url)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

/// `open131 npd …`: the operator's acts for the tax service and its app.
async fn npd(data_dir: &std::path::Path, location: &Location, cmd: NpdCommand) -> anyhow::Result<()> {
    let valid = |inn: &str| {
        // The INN is personal data: the message does not repeat it.
        open131_server::admin::npd_inn(inn).context("the INN must be 12 digits whose check digits match")
    };
    let (project, inn, event) = match cmd {
        NpdCommand::Import { file } => return crate::registry_cli::npd_import(data_dir, file).await,
        NpdCommand::Set { inn, status, name, phone, service_error, receipt_refusals } => {
            let inn = valid(&inn)?;
            let (name, phone) = (name.as_deref(), phone.as_deref());
            let taxpayer = open131_domain::npd::operator_taxpayer(status, name, phone, service_error, receipt_refusals)
                .map_err(anyhow::Error::msg)?;
            let store = open_store(location).await?;
            store.set_npd_taxpayer(inn.expose(), &taxpayer, OffsetDateTime::now_utc()).await?;
            println!("{}: {}", inn.masked(), status.as_str());
            return Ok(());
        }
        NpdCommand::ConfirmLink { project, inn } => (project, inn, LinkEvent::Confirm),
        NpdCommand::DeclineLink { project, inn } => (project, inn, LinkEvent::Decline),
        NpdCommand::Unlink { project, inn } => (project, inn, LinkEvent::Unlink),
    };
    let store = open_store(location).await?;
    let inn = valid(&inn)?;
    let dir = DataDir::new(data_dir);
    let bank_key = demo::ensure_bank_key(store.as_ref(), &dir, None).await?;
    let mut app = App::new(Config::new(dir.root().to_path_buf()), store, Arc::new(SystemClock), bank_key);
    // The imported register speaks for a link the project has not changed yet, as on the server.
    let registries = open131_server::registries::Registries::load_at_start(dir.root()).map_err(anyhow::Error::msg)?;
    app.set_registries(Arc::new(registries));
    let state = open131_server::admin::act_on_link(&app, &project, &inn, event).await?;
    println!("{} in project {project}: {}", inn.masked(), state.as_str());
    Ok(())
}
