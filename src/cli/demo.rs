//! `streamguard demo backfill`: replays the seed's incident against a running service.
//!
//! The seed's Jan 25, 2026 backfill processed 89 files and skipped 56 (62.9 %) because
//! their rows were still in BigQuery's streaming buffer from a recent orchestration run;
//! nothing retried them. The demo streams box-score rows for every game through the
//! emulator's insertAll — `buffered` games with a buffer time, the rest already flushed —
//! then POSTs one batch per game as the backfill, follows every unit until it lands or is
//! given up, and checks the final table for duplicate and missing rows.
//!
//! With most games buffered (`--conflict-share 0.9`, or the seed's own 62.9 %) the
//! processor's circuit breaker trips: the demo prints each breaker transition as
//! `GET /v1/breakers/{scope}` shows it, and the final table counts trips and recoveries.
//!
//! `--faults` makes the emulator refuse or lose some of the run's statements (BigQuery's
//! concurrent-update, rate-limit and backend errors, answers lost after the write landed)
//! and adds latency; the final table still has every game exactly once.
//!
//! Why it is long (about 700 lines): it is one client program read top to bottom — the
//! fixtures (games, box scores), the driver, the follower that outlives a service restart
//! ([`Reach`]) and the final report.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{NaiveDate, Utc};
use clap::Args;
use serde_json::{json, Value};

/// Flags of `streamguard demo backfill`.
#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    /// The running service.
    #[arg(long, env = "STREAMGUARD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Games (files) in the backfill.
    #[arg(long, default_value_t = 89)]
    pub games: usize,
    /// Of which still in the streaming buffer from the "recent orchestration run".
    #[arg(long, default_value_t = 56)]
    pub buffered: usize,
    /// Share of the games still buffered, a fraction from 0 to 1; overrides `--buffered`.
    /// `--conflict-share 0.9 --buffer 45s` against a service with the emulator defaults
    /// trips the breaker, re-opens it after a failed probe, then recovers.
    #[arg(long, value_parser = parse_share)]
    pub conflict_share: Option<f64>,
    /// How long the buffered games' rows stay in the buffer (`20s`, `10s..40s`).
    #[arg(long, default_value = "20s")]
    pub buffer: String,
    /// Player rows per team in each game.
    #[arg(long, default_value_t = 10)]
    pub players: usize,
    /// Target table (an emulator table: it appears on first write).
    #[arg(
        long,
        default_value = "nba-props-platform.nba_raw.bdl_player_boxscores"
    )]
    pub table: String,
    /// First game date; games are spread 8 a day, buffered games first.
    #[arg(long, default_value = "2026-01-17")]
    pub start_date: NaiveDate,
    /// Give up following after this long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print no live lines, only the final table.
    #[arg(long)]
    pub quiet: bool,
    /// Bearer token for a service with access control; it needs the `write` and `read`
    /// scopes (and `admin` with `--faults`). None for a service without tokens.
    #[arg(long, env = "STREAMGUARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Faults the emulator injects into the run's table while it runs, in the syntax of
    /// `STREAMGUARD_EMULATOR_FAULTS`, e.g.
    /// `concurrent_dml=0.1,quota_exceeded=0.05,transient=0.05,lost_answer=0.02,seed=42`:
    /// set with `PUT /emulator/tables/{table}/faults` before the backfill and cleared after,
    /// so the service shows itself riding through them.
    #[arg(long, value_parser = parse_faults)]
    pub faults: Option<String>,
}

fn parse_faults(s: &str) -> Result<String, String> {
    s.parse::<crate::warehouse::faults::Faults>()
        .map(|_| s.to_owned())
        .map_err(|e| format!("--faults: {e}"))
}

/// The demo's final figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Games (files) posted.
    pub files: usize,
    /// Loaded on the first attempt.
    pub loaded_first_attempt: usize,
    /// Deferred at least once.
    pub deferred: usize,
    /// Deferred, then loaded by a retry.
    pub resolved_by_retry: usize,
    /// Given up (conflict resolution `timeout`).
    pub unresolved: usize,
    /// Failed permanently.
    pub failed: usize,
    /// Rows in the table beyond what the backfill wrote (stale or doubled rows).
    pub duplicate_rows: usize,
    /// Backfill rows absent from the table.
    pub missing_rows: usize,
    /// Units the breaker held back before any attempt (answered `deferred`, 0 attempts).
    pub held_by_breaker: usize,
    /// Times the processor's breaker opened during the run (trips and re-opens).
    pub breaker_trips: usize,
    /// Times it closed again after a probe landed.
    pub breaker_recoveries: usize,
    /// Attempts spent on the run's units.
    pub attempts: usize,
    /// Warehouse statements (query jobs) spent on them: one carries many games.
    pub statements: usize,
    /// The run the backfill's batches name (`GET /v1/runs/{run}`).
    pub run: String,
    /// Wall time from the first POST to the last unit settling.
    pub elapsed: Duration,
}

/// The processor name the demo's runs start from: each run posts as
/// `bdl_boxscores_processor_<run id>`, a breaker scope of its own, so its breaker starts with
/// an empty window and a second run on the same database tells the same story.
pub const PROCESSOR: &str = "bdl_boxscores_processor";

fn parse_share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "--conflict-share expects a fraction from 0 to 1; got {s:?}"
        )),
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Indented rows split the row above them. "held by the breaker" cuts across: those
        // games are also counted in the rows above it (most then land on attempt 1).
        let rows = [
            ("games posted (one write unit each)", self.files.to_string()),
            (
                "  landed, never blocked",
                self.loaded_first_attempt.to_string(),
            ),
            (
                "  blocked at least once (conflict)",
                self.deferred.to_string(),
            ),
            (
                "    of which landed after waiting",
                self.resolved_by_retry.to_string(),
            ),
            (
                "    of which gave up (unresolved)",
                self.unresolved.to_string(),
            ),
            ("  failed", self.failed.to_string()),
            (
                "games held by the breaker first",
                self.held_by_breaker.to_string(),
            ),
            ("duplicate rows found", self.duplicate_rows.to_string()),
            ("rows missing", self.missing_rows.to_string()),
            ("breaker trips", self.breaker_trips.to_string()),
            ("breaker recoveries", self.breaker_recoveries.to_string()),
            ("attempts", self.attempts.to_string()),
            ("warehouse statements", self.statements.to_string()),
            (
                "statements per game",
                format!("{:.2}", self.statements as f64 / self.files.max(1) as f64),
            ),
            ("elapsed", format!("{:.1}s", self.elapsed.as_secs_f64())),
        ];
        writeln!(f, "run {:?} (GET /v1/runs/{{run}})", self.run)?;
        let line = "+------------------------------------+----------+";
        writeln!(f, "{line}")?;
        for (name, value) in rows {
            writeln!(f, "| {name:<34} | {value:>8} |")?;
        }
        write!(f, "{line}")
    }
}

const TEAMS: [&str; 30] = [
    "ATL", "BOS", "BKN", "CHA", "CHI", "CLE", "DAL", "DEN", "DET", "GSW", "HOU", "IND", "LAC",
    "LAL", "MEM", "MIA", "MIL", "MIN", "NOP", "NYK", "OKC", "ORL", "PHI", "PHX", "POR", "SAC",
    "SAS", "TOR", "UTA", "WAS",
];
const GAMES_PER_DAY: usize = 8;

/// One game of the demo.
#[derive(Debug, Clone)]
pub struct Game {
    /// `YYYYMMDD_AWAY_HOME`.
    pub game_id: String,
    /// `YYYY-MM-DD`, the partition.
    pub game_date: String,
    /// Whether its earlier rows are still in the streaming buffer.
    pub buffered: bool,
}

/// The games: buffered ones first, on their own days, so that (with the emulator's default
/// `partition` conflict scope) exactly the buffered games conflict.
pub fn games(count: usize, buffered: usize, start: NaiveDate) -> Vec<Game> {
    let buffered = buffered.min(count);
    let buffered_days = buffered.div_ceil(GAMES_PER_DAY);
    (0..count)
        .map(|i| {
            let is_buffered = i < buffered;
            let day = if is_buffered {
                i / GAMES_PER_DAY
            } else {
                buffered_days + (i - buffered) / GAMES_PER_DAY
            };
            let date = start + chrono::Days::new(day as u64);
            let slot = i % GAMES_PER_DAY;
            let (away, home) = (
                TEAMS[(slot * 2 + day) % 30],
                TEAMS[(slot * 2 + 1 + day) % 30],
            );
            Game {
                game_id: format!("{}_{away}_{home}", date.format("%Y%m%d")),
                game_date: date.to_string(),
                buffered: is_buffered,
            }
        })
        .collect()
}

/// Box-score rows of one game: `players` per team. `version` changes the stats so the
/// backfill's rows differ from the orchestration run's.
pub fn box_score(game: &Game, players: usize, version: &str) -> Vec<Value> {
    let teams: Vec<&str> = game.game_id.split('_').skip(1).collect();
    let seed = game
        .game_id
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let bump = u64::from(version == "backfill");
    teams
        .iter()
        .flat_map(|team| {
            (0..players).map(move |p| {
                let s = seed
                    .wrapping_add((p as u64) * 17)
                    .wrapping_add(team.len() as u64);
                json!({
                    "game_id": game.game_id,
                    "game_date": game.game_date,
                    "team_abbr": team,
                    "player_lookup": format!("{}_player_{p:02}", team.to_lowercase()),
                    "points": (s % 35) + bump,
                    "rebounds": (s / 7) % 15,
                    "assists": (s / 11) % 12,
                    "minutes": format!("{}:{:02}", 10 + (s % 28), s % 60),
                    // BigQuery keeps microseconds; more digits would be refused.
                    "processed_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    "source": version,
                })
            })
        })
        .collect()
}

/// Runs the demo and prints its live lines and final table.
///
/// # Errors
/// When the service cannot be reached or answers unexpectedly.
pub async fn backfill(args: BackfillArgs) -> anyhow::Result<()> {
    let quiet = args.quiet;
    let report = run(&args, |line| {
        if !quiet {
            println!("{line}");
        }
    })
    .await?;
    println!("\n{report}");
    if report.duplicate_rows > 0 || report.missing_rows > 0 {
        bail!("the final table is not exactly the backfill's rows");
    }
    Ok(())
}

/// Runs the demo, handing each live line to `print`, and returns the figures.
///
/// # Errors
/// When the service cannot be reached or answers unexpectedly.
pub async fn run(args: &BackfillArgs, mut print: impl FnMut(String)) -> anyhow::Result<Report> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = &args.token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("--token / STREAMGUARD_TOKEN must be printable ASCII")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()?;
    let base = args.url.trim_end_matches('/');
    let buffered = match args.conflict_share {
        Some(share) => ((args.games as f64) * share).round() as usize,
        None => args.buffered,
    };
    let games = games(args.games, buffered, args.start_date);
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let processor = format!("{PROCESSOR}_{run_id}");
    let run = format!("demo backfill {run_id}");

    declare_table(&http, base, &args.table, &mut print).await?;
    if let Some(faults) = &args.faults {
        let url = format!("{base}/emulator/tables/{}/faults", args.table);
        let body = expect_ok(
            http.put(&url)
                .json(&json!({ "faults": faults }))
                .send()
                .await
                .with_context(|| format!("PUT {url}: is the service running?"))?,
        )
        .await
        .context("setting --faults (needs a token with `admin` on a service with tokens)")?;
        print(format!(
            "injecting faults into every statement on {}: {}",
            args.table, body["faults"]
        ));
    }
    print(format!(
        "streaming {} games' rows through insertAll ({} still buffered for {})",
        games.len(),
        buffered.min(args.games),
        args.buffer
    ));
    for game in &games {
        let buffer = if game.buffered {
            args.buffer.as_str()
        } else {
            "0s"
        };
        let body =
            json!({"rows": box_score(game, args.players, "orchestration"), "buffer": buffer});
        let url = format!("{base}/emulator/tables/{}/insertAll", args.table);
        expect_ok(
            http.post(&url)
                .json(&body)
                .send()
                .await
                .with_context(|| format!("POST {url}: is the service running?"))?,
        )
        .await?;
    }

    print(format!(
        "posting the backfill: one batch per game to {base}/v1/batches"
    ));
    let started = Instant::now();
    let run_started_at = Utc::now();
    // Breaker transitions already shown (the latest one's time): only newer ones print.
    let mut shown_until =
        transition_time(&breaker(&http, base, &processor).await?["transitions"][0]);
    // From here on a service killed and restarted meanwhile (the README's `kill -9`
    // experiment) is waited for, up to --timeout: reads are retried, and so are the posts,
    // which carry idempotency keys.
    let deadline = started
        .checked_add(args.timeout)
        .unwrap_or_else(|| started + Duration::from_secs(365 * 24 * 3600));
    let mut reach = Reach::new(&http, deadline);
    let mut batches: Vec<(String, String)> = Vec::new(); // (game_id, batch_id)
    for game in &games {
        let body = json!({
            "processor_name": processor,
            "table": args.table,
            "key_columns": ["game_id"],
            "partition_column": "game_date",
            "rows": box_score(game, args.players, "backfill"),
            "idempotency_key": format!("demo-{run_id}-{}", game.game_id),
            "run": run,
        });
        let response = reach
            .post(&format!("{base}/v1/batches"), &body, &mut print)
            .await?;
        let batch_id = response["batch_id"]
            .as_str()
            .context("batch_id missing from the answer")?
            .to_owned();
        batches.push((game.game_id.clone(), batch_id));
    }

    let mut last: HashMap<String, String> = HashMap::new();
    let mut held: HashMap<String, bool> = HashMap::new();
    let mut final_states: BTreeMap<String, (String, i64)> = BTreeMap::new();
    loop {
        // Breaker transitions first: they explain the unit changes printed after them.
        let b = reach
            .get(&format!("{base}/v1/breakers/{processor}"), &mut print)
            .await?;
        let mut fresh: Vec<&Value> = b["transitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| transition_time(t) > shown_until)
            .collect();
        fresh.reverse(); // oldest first
        for t in &fresh {
            let opened = t["to_state"] == "open";
            print(format!(
                "[{:>6.1}s] breaker {processor}: {} -> {} ({}){}",
                started.elapsed().as_secs_f64(),
                t["from_state"].as_str().unwrap_or("?"),
                t["to_state"].as_str().unwrap_or("?"),
                t["reason"].as_str().unwrap_or(""),
                b["reopens_at"]
                    .as_str()
                    .filter(|_| opened && b["state"] == "open")
                    .map(|at| format!("; probe at {at}"))
                    .unwrap_or_default()
            ));
        }
        if let Some(t) = fresh.last() {
            shown_until = transition_time(t);
        }
        let mut held_now: Vec<String> = Vec::new();
        for (game_id, batch_id) in &batches {
            if final_states.contains_key(game_id) {
                continue;
            }
            let view = reach
                .get(&format!("{base}/v1/batches/{batch_id}"), &mut print)
                .await?;
            let unit = &view["units"][0];
            let state = unit["state"].as_str().unwrap_or("?").to_owned();
            let attempts = unit["attempts"].as_i64().unwrap_or(0);
            // Deferred without an attempt: held by the open breaker, or — with a conflict —
            // known to be blocked because its partition was just refused (a hold).
            let by_breaker = state == "deferred" && attempts == 0 && unit["conflict_id"].is_null();
            if by_breaker {
                held.insert(game_id.clone(), true);
            }
            let key = format!("{state}/{}", attempts.min(1));
            if by_breaker && last.get(game_id) != Some(&key) {
                held_now.push(unit["next_attempt_at"].as_str().unwrap_or("?").to_owned());
                last.insert(game_id.clone(), key);
            } else if last.get(game_id) != Some(&key) {
                let detail = match state.as_str() {
                    "deferred" if attempts == 0 => format!(
                        "not attempted: its partition is held (streaming buffer); next attempt at {}",
                        unit["next_attempt_at"].as_str().unwrap_or("?")
                    ),
                    "deferred" => format!(
                        "attempt {attempts} refused: streaming buffer; next attempt at {}",
                        unit["next_attempt_at"].as_str().unwrap_or("?")
                    ),
                    "loaded" => format!("landed on attempt {attempts}"),
                    "unresolved" | "failed" => unit["error"].as_str().unwrap_or("").to_owned(),
                    _ => String::new(),
                };
                print(format!(
                    "[{:>6.1}s] {game_id:<18} {:<10} {detail}",
                    started.elapsed().as_secs_f64(),
                    state
                ));
                last.insert(game_id.clone(), key);
            }
            if !matches!(state.as_str(), "pending" | "deferred") {
                final_states.insert(game_id.clone(), (state, attempts));
            }
        }
        if let Some(at) = held_now.first() {
            print(format!(
                "[{:>6.1}s] {} game(s) held by the open breaker, not attempted; next attempt at {at}",
                started.elapsed().as_secs_f64(),
                held_now.len()
            ));
        }
        if final_states.len() == batches.len() {
            break;
        }
        if started.elapsed() > args.timeout {
            bail!(
                "{} of {} games still not settled after {:?}",
                batches.len() - final_states.len(),
                batches.len(),
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = started.elapsed();

    let mut report = Report {
        files: games.len(),
        elapsed,
        ..Report::default()
    };
    // The figures of the final table come from the service's own report of the run.
    let mut run_url = reqwest::Url::parse(&format!("{base}/v1/runs/"))?;
    run_url
        .path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--url {base} cannot hold a path"))?
        .pop_if_empty()
        .push(&run);
    let totals = reach.get(run_url.as_str(), &mut print).await?;
    let figure = |name: &str| totals[name].as_u64().unwrap_or(0) as usize;
    report.loaded_first_attempt = figure("loaded_first_attempt");
    report.deferred = figure("deferred");
    report.resolved_by_retry = figure("resolved_by_retry");
    report.unresolved = figure("unresolved");
    report.failed = figure("failed") + totals["units"]["cancelled"].as_u64().unwrap_or(0) as usize;
    report.attempts = figure("attempts");
    report.statements = figure("statements");
    report.run = run;
    report.held_by_breaker = held.len();
    let transitions = reach
        .get(&format!("{base}/v1/breakers/{processor}"), &mut print)
        .await?["transitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let since_start = |t: &&Value| transition_time(t).is_some_and(|at| at >= run_started_at);
    report.breaker_trips = transitions
        .iter()
        .filter(since_start)
        .filter(|t| t["to_state"] == "open")
        .count();
    report.breaker_recoveries = transitions
        .iter()
        .filter(since_start)
        .filter(|t| t["from_state"] == "half_open" && t["to_state"] == "closed")
        .count();
    let rows = reach
        .get(
            &format!("{base}/emulator/tables/{}/rows", args.table),
            &mut print,
        )
        .await?;
    let (duplicates, missing) = check_table(&rows, &games, args.players);
    report.duplicate_rows = duplicates;
    report.missing_rows = missing;
    if args.faults.is_some() {
        // Back to the service's own faults (STREAMGUARD_EMULATOR_FAULTS) for this table.
        let url = format!("{base}/emulator/tables/{}/faults", args.table);
        expect_ok(http.delete(&url).send().await?).await?;
        print(format!("faults on {} cleared", args.table));
    }
    Ok(report)
}

/// Counts, over the demo's games, rows beyond the backfill's (duplicates or stale rows)
/// and backfill rows that are absent.
fn check_table(body: &Value, games: &[Game], players: usize) -> (usize, usize) {
    let mut present: HashMap<(String, String, String), usize> = HashMap::new();
    let mut per_game: HashMap<String, usize> = HashMap::new();
    for row in body["rows"].as_array().into_iter().flatten() {
        let data = &row["data"];
        let game = data["game_id"].as_str().unwrap_or_default().to_owned();
        *per_game.entry(game.clone()).or_default() += 1;
        let player = data["player_lookup"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let source = data["source"].as_str().unwrap_or_default().to_owned();
        *present.entry((game, player, source)).or_default() += 1;
    }
    let expected_per_game = players * 2;
    let (mut duplicates, mut missing) = (0, 0);
    for game in games {
        let count = per_game.get(&game.game_id).copied().unwrap_or(0);
        duplicates += count.saturating_sub(expected_per_game);
        for row in box_score(game, players, "backfill") {
            let key = (
                game.game_id.clone(),
                row["player_lookup"].as_str().unwrap_or_default().to_owned(),
                "backfill".to_owned(),
            );
            if present.get(&key).copied().unwrap_or(0) == 0 {
                missing += 1;
            }
        }
    }
    (duplicates, missing)
}

/// GETs that outlast a service restart: a refused or broken connection is "service
/// unreachable" (said once per outage), retried every second until `deadline`.
#[derive(Debug)]
pub struct Reach<'a> {
    http: &'a reqwest::Client,
    deadline: Instant,
    down_since: Option<Instant>,
}

impl<'a> Reach<'a> {
    /// Retries until `deadline`.
    pub fn new(http: &'a reqwest::Client, deadline: Instant) -> Self {
        Self {
            http,
            deadline,
            down_since: None,
        }
    }

    /// GET `url` and its JSON body (an error for a non-2xx answer), waiting out outages.
    ///
    /// # Errors
    /// When the service answers an error status, or is still unreachable at the deadline.
    pub async fn get(
        &mut self,
        url: &str,
        print: &mut impl FnMut(String),
    ) -> anyhow::Result<Value> {
        self.call(|| self.http.get(url), "GET", url, print).await
    }

    /// POST `body` to `url` and its JSON answer, waiting out outages. Only for requests that
    /// are safe to repeat: the demo's batches carry an idempotency key, so a POST whose
    /// answer was lost replays the original batch instead of writing twice.
    ///
    /// # Errors
    /// When the service answers an error status, or is still unreachable at the deadline.
    pub async fn post(
        &mut self,
        url: &str,
        body: &Value,
        print: &mut impl FnMut(String),
    ) -> anyhow::Result<Value> {
        let http = self.http;
        self.call(|| http.post(url).json(body), "POST", url, print)
            .await
    }

    async fn call(
        &mut self,
        request: impl Fn() -> reqwest::RequestBuilder,
        method: &str,
        url: &str,
        print: &mut impl FnMut(String),
    ) -> anyhow::Result<Value> {
        loop {
            let attempt = match request().send().await {
                Ok(response) => {
                    let status = response.status();
                    response.text().await.map(|text| (status, text))
                }
                Err(e) => Err(e),
            };
            match attempt {
                Ok((status, text)) => {
                    if let Some(since) = self.down_since.take() {
                        print(format!(
                            "service reachable again after {:.1}s",
                            since.elapsed().as_secs_f64()
                        ));
                    }
                    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if !status.is_success() {
                        bail!("{url} answered {status}: {body}");
                    }
                    return Ok(body);
                }
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() => {
                    if self.down_since.is_none() {
                        print(format!(
                            "service unreachable ({}); retrying until it answers or --timeout passes",
                            root_cause(&e)
                        ));
                        self.down_since = Some(Instant::now());
                    }
                    if Instant::now() >= self.deadline {
                        bail!("the service is still unreachable at {url} and --timeout has passed: {}", root_cause(&e));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("{method} {url}")),
            }
        }
    }
}

/// The innermost cause of an error (`Connection refused (os error 111)`).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// When a breaker transition (from `GET /v1/breakers/{scope}`) happened.
fn transition_time(t: &Value) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    t["created_at"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
}

/// `GET /v1/breakers/{processor}`: the breaker with its last transitions.
async fn breaker(http: &reqwest::Client, base: &str, processor: &str) -> anyhow::Result<Value> {
    expect_ok(
        http.get(format!("{base}/v1/breakers/{processor}"))
            .send()
            .await?,
    )
    .await
}

/// Declares the box-score table the way a user would, with BigQuery's `tables.insert`
/// body: typed columns, daily partitions on `game_date` that every statement must filter
/// on, clustered by `game_id`. A table declared by an earlier run is kept (409).
async fn declare_table(
    http: &reqwest::Client,
    base: &str,
    table: &str,
    print: &mut impl FnMut(String),
) -> anyhow::Result<()> {
    let parts: Vec<&str> = table.split('.').collect();
    let [project, dataset, table_id] = parts.as_slice() else {
        bail!("--table must be project.dataset.table, got {table}");
    };
    let column =
        |name: &str, kind: &str, mode: &str| json!({"name": name, "type": kind, "mode": mode});
    let body = json!({
        "tableReference": {"projectId": project, "datasetId": dataset, "tableId": table_id},
        "schema": {"fields": [
            column("game_id", "STRING", "REQUIRED"), column("game_date", "DATE", "REQUIRED"),
            column("team_abbr", "STRING", "NULLABLE"), column("player_lookup", "STRING", "REQUIRED"),
            column("points", "INTEGER", "NULLABLE"), column("rebounds", "INTEGER", "NULLABLE"),
            column("assists", "INTEGER", "NULLABLE"), column("minutes", "STRING", "NULLABLE"),
            column("processed_at", "TIMESTAMP", "NULLABLE"), column("source", "STRING", "NULLABLE"),
        ]},
        "timePartitioning": {"type": "DAY", "field": "game_date"},
        "requirePartitionFilter": true,
        "clustering": {"fields": ["game_id"]},
    });
    let url = format!("{base}/emulator/tables");
    let response = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}: is the service running?"))?;
    if response.status() == reqwest::StatusCode::CONFLICT {
        print(format!("table {table} already declared"));
        return Ok(());
    }
    expect_ok(response).await?;
    print(format!(
        "declared {table}: 10 typed columns, partitioned by game_date (filter required), clustered by game_id"
    ));
    Ok(())
}

async fn expect_ok(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let url = response.url().to_string();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{url} answered {status}: {body}");
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_games_have_days_of_their_own() {
        let games = games(89, 56, NaiveDate::from_ymd_opt(2026, 1, 17).unwrap());
        assert_eq!(games.len(), 89);
        let buffered_dates: std::collections::HashSet<_> = games
            .iter()
            .filter(|g| g.buffered)
            .map(|g| &g.game_date)
            .collect();
        assert!(games
            .iter()
            .filter(|g| !g.buffered)
            .all(|g| !buffered_dates.contains(&g.game_date)));
        let ids: std::collections::HashSet<_> = games.iter().map(|g| &g.game_id).collect();
        assert_eq!(ids.len(), 89, "game ids are unique");
        assert!(games[0].game_id.starts_with("20260117_"));
    }

    #[test]
    fn box_scores_have_two_teams_of_players() {
        let g = &games(1, 0, NaiveDate::from_ymd_opt(2026, 1, 24).unwrap())[0];
        let rows = box_score(g, 10, "backfill");
        assert_eq!(rows.len(), 20);
        assert_eq!(rows[0]["game_date"], json!("2026-01-24"));
    }
}
