//! The `simulator` source: realistic scans with no hardware, so the product can be tried (and
//! demonstrated) anywhere. Codes are GS1 DataMatrix element strings with valid check digits:
//! GTIN (01), expiry (17), batch (10) and a unique serial (21), prefixed with the AIM
//! identifier `]d2`. A configurable share are no-reads and invalid codes.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, MissedTickBehavior};
use tracegate_drivers::{Reading, ReadingKind, Shutdown, Sink};

/// `type = "simulator"` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {
    /// Scans per second, 0.01 to 10,000. Default 1.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Share of scans that are no-reads, 0 to 1. Default 0.02.
    #[serde(default = "default_share")]
    pub noread_ratio: f64,
    /// Share of scans that are invalid (wrong check digit, impossible date, lost GS
    /// separator), 0 to 1. Default 0.02.
    #[serde(default = "default_share")]
    pub invalid_ratio: f64,
    /// Stop after this many scans. Default: run until stopped.
    #[serde(default)]
    pub count: Option<u64>,
    /// GTIN-14s to pick from; each must carry a valid check digit. Default one example GTIN.
    #[serde(default = "default_gtins")]
    pub gtins: Vec<String>,
    /// Batch/lot (AI 10) printed on every code. Default "SIM-LOT-1".
    #[serde(default = "default_batch")]
    pub batch: String,
    /// Prefix codes with the AIM identifier `]d2` (set `aim = true` on the source to split
    /// it off). Default true.
    #[serde(default = "default_true")]
    pub aim_prefix: bool,
}

fn default_rate() -> f64 {
    1.0
}
fn default_share() -> f64 {
    0.02
}
fn default_gtins() -> Vec<String> {
    vec!["09506000134352".into()]
}
fn default_batch() -> String {
    "SIM-LOT-1".into()
}
fn default_true() -> bool {
    true
}

impl SimulatorConfig {
    /// Semantic checks, as (key, message).
    pub fn validate(&self) -> Result<(), Vec<(String, String)>> {
        let mut p = Vec::new();
        if !(0.01..=10_000.0).contains(&self.rate) {
            p.push((
                "rate".into(),
                format!(
                    "rate {} is out of range 0.01..=10000 scans per second",
                    self.rate
                ),
            ));
        }
        for (key, v) in [
            ("noread_ratio", self.noread_ratio),
            ("invalid_ratio", self.invalid_ratio),
        ] {
            if !(0.0..=1.0).contains(&v) {
                p.push((key.into(), format!("{key} {v} must be between 0 and 1")));
            }
        }
        if self.noread_ratio + self.invalid_ratio > 1.0 {
            p.push((
                "invalid_ratio".into(),
                "noread_ratio + invalid_ratio exceed 1".into(),
            ));
        }
        if self.gtins.is_empty() {
            p.push((
                "gtins".into(),
                "gtins must name at least one GTIN-14".into(),
            ));
        }
        for (i, g) in self.gtins.iter().enumerate() {
            let ok = g.len() == 14
                && g.bytes().all(|b| b.is_ascii_digit())
                && tracegate_gs1::check_digit(&g[..13]) == g.as_bytes()[13] - b'0';
            if !ok {
                p.push((
                    format!("gtins[{i}]"),
                    format!("{g:?} is not a GTIN-14 with a valid check digit"),
                ));
            }
        }
        if self.batch.is_empty()
            || self.batch.len() > 20
            || !self.batch.bytes().all(tracegate_gs1::is_cset82)
        {
            p.push((
                "batch".into(),
                "batch must be 1–20 characters of GS1 CSET 82 (AI 10)".into(),
            ));
        }
        if p.is_empty() { Ok(()) } else { Err(p) }
    }
}

/// Generates codes; pure apart from the random source.
pub struct Generator {
    config: SimulatorConfig,
    /// Serial prefix unique to this run, so serials never repeat across restarts.
    run_id: String,
    n: u64,
}

impl Generator {
    /// A generator for `config`.
    pub fn new(config: SimulatorConfig) -> Self {
        let run_id = format!("{:06X}", rand::rng().random_range(0..0xFF_FFFFu32));
        Generator {
            config,
            run_id,
            n: 0,
        }
    }

    /// The next reading's kind.
    pub fn next_kind(&mut self, rng: &mut impl Rng) -> ReadingKind {
        self.n += 1;
        let roll: f64 = rng.random();
        if roll < self.config.noread_ratio {
            return ReadingKind::NoRead;
        }
        let invalid = roll < self.config.noread_ratio + self.config.invalid_ratio;
        let gtin = &self.config.gtins[rng.random_range(0..self.config.gtins.len())];
        let serial = format!("{}{:08}", self.run_id, self.n);
        let mut expiry = "271231".to_string();
        let mut gtin = gtin.clone();
        let mut gs = true;
        if invalid {
            match rng.random_range(0..3) {
                0 => {
                    let last = gtin.pop().map_or(0, |c| c as u8 - b'0');
                    gtin.push(char::from(b'0' + (last + 1) % 10));
                }
                1 => expiry = "271232".into(),
                _ => gs = false,
            }
        }
        let mut code = if self.config.aim_prefix {
            b"]d2".to_vec()
        } else {
            Vec::new()
        };
        let body = tracegate_gs1::encode(&[
            ("01", &gtin),
            ("17", &expiry),
            ("10", &self.config.batch),
            ("21", &serial),
        ]);
        if gs {
            code.extend(body);
        } else {
            code.extend(body.into_iter().filter(|b| *b != 0x1D));
        }
        ReadingKind::Code(code)
    }
}

/// Emits scans at the configured rate until shutdown or `count`.
pub async fn run(config: SimulatorConfig, source: String, sink: Sink, mut shutdown: Shutdown) {
    let rate = config.rate;
    let count = config.count;
    let mut generator = Generator::new(config);
    let start = Instant::now();
    let mut sent: u64 = 0;
    let tick = Duration::from_secs_f64((1.0 / rate).max(0.001));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tracing::info!(source = %source, rate, "simulator started");
    sink.set_device_state(tracegate_drivers::DeviceState::Connected);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait() => return,
        }
        let due = (start.elapsed().as_secs_f64() * rate).floor() as u64 + 1;
        while sent < due {
            if count.is_some_and(|c| sent >= c) {
                tracing::info!(source = %source, sent, "simulator finished its count");
                return;
            }
            let kind = generator.next_kind(&mut rand::rng());
            let reading = Reading::now(kind);
            tokio::select! {
                r = sink.submit(reading) => if r.is_err() { return },
                _ = shutdown.wait() => return,
            }
            sent += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(noread: f64, invalid: f64) -> SimulatorConfig {
        SimulatorConfig {
            rate: 1.0,
            noread_ratio: noread,
            invalid_ratio: invalid,
            count: None,
            gtins: default_gtins(),
            batch: default_batch(),
            aim_prefix: true,
        }
    }

    #[test]
    fn valid_codes_parse_as_valid_gs1() {
        let mut g = Generator::new(config(0.0, 0.0));
        let mut rng = rand::rng();
        for _ in 0..200 {
            let ReadingKind::Code(code) = g.next_kind(&mut rng) else {
                panic!("expected a code")
            };
            let (sym, data) = tracegate_gs1::split_aim(&code);
            assert_eq!(sym.expect("aim").aim, "]d2");
            let parsed = tracegate_gs1::parse_element_string(data, 2026);
            assert!(parsed.is_valid(), "{parsed:?}");
            assert_eq!(parsed.elements.len(), 4);
        }
    }

    #[test]
    fn shares_of_noreads_and_invalid_codes_are_respected() {
        let mut g = Generator::new(config(0.2, 0.3));
        let mut rng = rand::rng();
        let (mut noread, mut invalid) = (0, 0);
        for _ in 0..5000 {
            match g.next_kind(&mut rng) {
                ReadingKind::NoRead => noread += 1,
                ReadingKind::Code(c) => {
                    let (_, data) = tracegate_gs1::split_aim(&c);
                    let p = tracegate_gs1::parse_element_string(data, 2026);
                    // A lost GS still parses "validly" (batch swallows the serial): count it
                    // by its element count.
                    if !p.is_valid() || p.elements.len() != 4 {
                        invalid += 1;
                    }
                }
                ReadingKind::Malformed { .. } | ReadingKind::Alarm { .. } => unreachable!(),
            }
        }
        assert!((800..1200).contains(&noread), "noreads {noread}");
        assert!((1200..1800).contains(&invalid), "invalid {invalid}");
    }

    #[test]
    fn bad_settings_are_named() {
        let mut c = config(0.7, 0.7);
        c.gtins = vec!["09506000134353".into()];
        c.rate = 0.0;
        let keys: Vec<String> = c
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["rate", "invalid_ratio", "gtins[0]"]);
    }
}
