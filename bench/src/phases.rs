//! The measured phases and the targets table.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use crate::agent::{Agent, AgentSetup, RAW_PREFIX, TOPIC_PREFIX, histogram, histogram_quantile};
use crate::broker::Broker;
use crate::reader::{Pace, Reader, ReaderRun};
use crate::stats::{Lat, Report, round};
use crate::subscriber::{Shared, Subscriber, wait_count};
use crate::util::{ProcSnap, filesystem_of, find_program, now_ns, poll_until, proc_snap};
use crate::{Mode, Opts};

const SOURCE: &str = "st10-reader";

/// Samples a process's VmRSS every 100 ms and keeps the maximum since the last reset.
struct Sampler {
    max_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let max_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (max_kib.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(p) = proc_snap(pid) {
                    m.fetch_max(p.rss_kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Sampler {
            max_kib,
            stop,
            handle: Some(handle),
        }
    }

    fn reset(&self) {
        self.max_kib.store(0, Ordering::Relaxed);
    }

    fn max_kib(&self) -> u64 {
        self.max_kib.load(Ordering::Relaxed)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A running agent with its reader and RSS sampler.
struct Running {
    agent: Agent,
    reader: Reader,
    sampler: Sampler,
}

struct Bench<'a> {
    o: &'a Opts,
    work: PathBuf,
    broker: Broker,
    shared: Arc<Shared>,
    sub: Option<Subscriber>,
    /// The next bench sequence number for the reader, and for the raw publisher.
    next_seq: u64,
    next_raw: u64,
    /// Distinct agent events / raw messages the subscriber should have by now.
    expected_agent: u64,
    expected_raw: u64,
    r: Report,
    /// Best raw publisher rate (messages/s arriving at the subscriber).
    ceiling: Option<f64>,
    agents: u32,
}

/// Memory is reported in MiB (as ps, top and systemd's MemoryMax= count it).
fn mb(kib: u64) -> String {
    format!("{:.2} MiB ({kib} KiB)", kib as f64 / 1024.0)
}

fn kib_to_mib(kib: u64) -> f64 {
    round(kib as f64 / 1024.0, 2)
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

pub fn run(o: &Opts) -> Result<(), String> {
    std::fs::create_dir_all(&o.dir).map_err(|e| format!("{}: {e}", o.dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("tgbench-")
        .tempdir_in(&o.dir)
        .map_err(|e| format!("work folder in {}: {e}", o.dir.display()))?;
    let work = tmp.path().to_path_buf();
    let mut r = Report::default();
    machine(&mut r, o, &work);
    if o.mode == Mode::Sizes {
        sizes(&mut r, o, &work);
        return finish(r, o, tmp);
    }
    let broker = Broker::start(&work.join("broker"))?;
    let shared = Arc::new(Shared::default());
    let sub = Subscriber::connect(broker.port, shared.clone())?;
    let mut b = Bench {
        o,
        work: work.clone(),
        broker,
        shared,
        sub: Some(sub),
        next_seq: 1,
        next_raw: 1,
        expected_agent: 0,
        expected_raw: 0,
        r,
        ceiling: None,
        agents: 0,
    };
    let result = b.phases();
    let r = std::mem::take(&mut b.r);
    if let Err(e) = result {
        if o.keep {
            let _ = tmp.keep();
            eprintln!("work folder kept: {}", work.display());
        }
        return Err(e);
    }
    if let Some(s) = b.sub.take() {
        s.stop();
    }
    b.broker.stop();
    let mut r = r;
    if matches!(o.mode, Mode::All | Mode::Smoke) {
        sizes(&mut r, o, &work);
    }
    targets(&mut r, o);
    finish(r, o, tmp)
}

fn finish(r: Report, o: &Opts, tmp: tempfile::TempDir) -> Result<(), String> {
    if let Some(path) = &o.json {
        let text = serde_json::to_string_pretty(&Value::Object(r.sections.clone()))
            .map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
        println!("\nfigures written to {}", path.display());
    }
    if o.keep {
        println!("work folder kept: {}", tmp.keep().display());
    }
    Ok(())
}

impl Bench<'_> {
    fn phases(&mut self) -> Result<(), String> {
        let mode = self.o.mode;
        let latency = matches!(mode, Mode::All | Mode::Smoke | Mode::Latency);
        let throughput = matches!(mode, Mode::All | Mode::Smoke | Mode::Throughput);
        let idle_only = mode == Mode::Idle;
        if latency || throughput || idle_only {
            let mut a = self.start_agent("agent", 2_000_000, true)?;
            self.idle(&a, "idle (fresh, connected)", self.o.idle_secs);
            if (latency || throughput) && self.o.preload > 0 {
                self.preload(&mut a)?;
            }
            if latency {
                let s1 = self.o.rate1_secs;
                let s = self.o.rate_secs;
                self.rate(&mut a, 1.0, s1)?;
                self.rate(&mut a, 100.0, s)?;
                self.rate(&mut a, 1000.0, s)?;
                let idle2 = (self.o.idle_secs / 3.0).max(1.0);
                self.idle(&a, "idle (after load)", idle2);
            }
            if throughput {
                self.throughput(&mut a)?;
            }
            let end = a.agent.snap();
            self.r.section("agent footprint");
            self.r.put(
                "agent footprint",
                "rss_peak_mib",
                json!(kib_to_mib(end.hwm_kib)),
                &format!("VmHWM over the whole run: {}", mb(end.hwm_kib)),
            );
            self.stop_agent(a)?;
        }
        if matches!(mode, Mode::All | Mode::Smoke | Mode::Backlog) {
            self.backlog()?;
        }
        Ok(())
    }

    /// Starts an agent in a fresh folder; waits for the broker connection (when `connected`)
    /// and the reader's connection.
    fn start_agent(
        &mut self,
        name: &str,
        max_events: u64,
        connected: bool,
    ) -> Result<Running, String> {
        self.agents += 1;
        let dir = self.work.join(format!("{name}-{}", self.agents));
        let agent = Agent::start(
            &self.o.agent,
            &dir,
            &AgentSetup {
                broker_port: self.broker.port,
                max_events,
                overrides: self.o.overrides.clone(),
                env: self.o.agent_env.clone(),
            },
        )?;
        if connected
            && !poll_until(Duration::from_secs(20), Duration::from_millis(20), || {
                agent.metric("tracegate_mqtt_connected") == Some(1.0)
            })
        {
            return Err(format!(
                "the agent did not connect to the broker\n{}",
                agent.log_tail(30)
            ));
        }
        let reader = Reader::connect(agent.scanner_port, Duration::from_secs(20))?;
        let gauge = format!("tracegate_device_connected{{source=\"{SOURCE}\"}}");
        if !poll_until(Duration::from_secs(20), Duration::from_millis(20), || {
            agent.metric(&gauge) == Some(1.0)
        }) {
            return Err(format!(
                "the agent did not see the reader\n{}",
                agent.log_tail(30)
            ));
        }
        let sampler = Sampler::start(agent.pid());
        Ok(Running {
            agent,
            reader,
            sampler,
        })
    }

    fn stop_agent(&mut self, mut a: Running) -> Result<(), String> {
        drop(a.reader);
        if !a.agent.stop() {
            return Err(format!(
                "the agent did not stop within 20s of SIGTERM\n{}",
                a.agent.log_tail(30)
            ));
        }
        Ok(())
    }

    /// Sends `count` codes; the subscriber should then get them.
    fn send(
        &mut self,
        a: &mut Running,
        count: usize,
        pace: Pace,
        timeout: Duration,
    ) -> Result<ReaderRun, String> {
        let first = self.next_seq;
        self.next_seq += count as u64;
        self.expected_agent += count as u64;
        let run = a
            .reader
            .run(first, count, pace, timeout)
            .map_err(|e| format!("{e}\n{}", a.agent.log_tail(30)))?;
        if run.rejected > 0 {
            return Err(format!(
                "the agent rejected {} of {count} codes (NG)\n{}",
                run.rejected,
                a.agent.log_tail(30)
            ));
        }
        Ok(run)
    }

    /// Waits until the subscriber has every event sent so far and the queue is empty.
    fn wait_delivered(&self, agent: &Agent, timeout: Duration) -> Result<(), String> {
        if !wait_count(&self.shared.agent_unique, self.expected_agent, timeout) {
            return Err(format!(
                "the subscriber has {} of {} events after {timeout:?}\n{}",
                self.shared.agent_unique.load(Ordering::SeqCst),
                self.expected_agent,
                agent.log_tail(30)
            ));
        }
        if !poll_until(timeout, Duration::from_millis(5), || {
            agent.metric("tracegate_queue_depth_events") == Some(0.0)
        }) {
            return Err(format!("the queue did not empty\n{}", agent.log_tail(30)));
        }
        Ok(())
    }

    /// Latest arrival among seqs `first..first+n` (agent or raw), and the earliest.
    fn arrival_span(&self, raw: bool, first: u64, n: u64) -> (u64, u64) {
        let a = if raw {
            &self.shared.raw
        } else {
            &self.shared.agent
        };
        let a = a.lock().unwrap();
        let mut lo = u64::MAX;
        let mut hi = 0;
        for s in first..first + n {
            if let Some(t) = a.at(s) {
                lo = lo.min(t);
                hi = hi.max(t);
            }
        }
        (lo, hi)
    }

    /// Brings the agent into the steady state of a long-running one: the retention of
    /// delivered events is full, so every later commit also prunes.
    fn preload(&mut self, a: &mut Running) -> Result<(), String> {
        let sec = "preload";
        self.r.section(sec);
        let n = self.o.preload;
        let w = self.o.window;
        let run = self.send(
            a,
            n as usize,
            Pace::Pipelined {
                window: w,
                batch: 32,
            },
            Duration::from_secs(n / 100 + 120),
        )?;
        self.wait_delivered(&a.agent, Duration::from_secs(n / 100 + 120))?;
        let (_, last) = self.arrival_span(false, run.first_seq, n);
        let rate = n as f64 / secs(last - run.sent[0]);
        let retained = a
            .agent
            .metric("tracegate_queue_retained_events")
            .unwrap_or(-1.0);
        self.r.put(sec, "events", json!(n), &format!("{n} events pushed and delivered ({rate:.0}/s; not a measurement), {retained} delivered events retained"));
        let (written, waited) = settle(&a.agent);
        self.r.put(
            sec,
            "settle_write_bytes",
            json!(written),
            &format!(
                "{written} bytes written after the last delivery, before the next phase ({waited:.1} s): the preload's last delivered marks and the checkpoint of its WAL, not the next phase's"
            ),
        );
        Ok(())
    }

    fn idle(&mut self, a: &Running, label: &str, secs_: f64) {
        let sec = label.to_string();
        self.r.section(&sec);
        let s0 = a.agent.snap();
        std::thread::sleep(Duration::from_secs_f64(secs_));
        let s1 = a.agent.snap();
        let dt = secs(s1.at_ns - s0.at_ns);
        self.r.put(
            &sec,
            "seconds",
            json!(round(dt, 1)),
            &format!("{dt:.1} s, no scans, broker and reader connected"),
        );
        self.r.put(
            &sec,
            "rss_mib",
            json!(kib_to_mib(s1.rss_kib)),
            &mb(s1.rss_kib),
        );
        self.r.put(
            &sec,
            "rss_anon_mib",
            json!(kib_to_mib(s1.anon_kib)),
            &format!(
                "{} of it anonymous (heap, stacks); the rest are file pages of the binary and the C library",
                mb(s1.anon_kib)
            ),
        );
        let w = s1.write_bytes - s0.write_bytes;
        self.r.put(
            &sec,
            "disk_write_bytes",
            json!(w),
            &format!("{w} bytes written to storage (write_bytes)"),
        );
        let cpu = s1.cpu_secs - s0.cpu_secs;
        self.r.put(
            &sec,
            "cpu_secs",
            json!(round(cpu, 3)),
            &format!("{cpu:.2} s CPU"),
        );
    }

    fn rate(&mut self, a: &mut Running, rate: f64, secs_: f64) -> Result<(), String> {
        let sec = format!("{rate} events/s");
        self.r.section(&sec);
        let count = ((rate * secs_).round() as usize).max(1);
        let m0 = a.agent.metrics().unwrap_or_default();
        let s0 = a.agent.snap();
        a.sampler.reset();
        let run = self.send(
            a,
            count,
            Pace::Rate(rate),
            Duration::from_secs_f64(secs_ * 3.0 + 60.0),
        )?;
        self.wait_delivered(&a.agent, Duration::from_secs(60))?;
        std::thread::sleep(Duration::from_millis(50));
        let s1 = a.agent.snap();
        let m1 = a.agent.metrics().unwrap_or_default();
        let rss_max = a.sampler.max_kib().max(s1.rss_kib);
        let span = run.sent.last().unwrap() - run.sent[0];
        let achieved = if span > 0 {
            (count - 1) as f64 / secs(span)
        } else {
            0.0
        };
        self.r.put(
            &sec,
            "events",
            json!(count),
            &format!("{count} codes, sent at {achieved:.1}/s"),
        );
        let commit = Lat::of(
            run.sent
                .iter()
                .zip(&run.replied)
                .map(|(s, r)| r - s)
                .collect(),
        )
        .unwrap();
        let sub = self.shared.agent.lock().unwrap();
        let ack = Lat::of(
            run.sent
                .iter()
                .enumerate()
                .filter_map(|(i, s)| sub.at(run.first_seq + i as u64).map(|t| t - s))
                .collect(),
        )
        .unwrap();
        drop(sub);
        self.r.put(
            &sec,
            "scan_to_commit",
            commit.json(),
            &format!("scan→committed (OK reply)  {}", commit.text()),
        );
        self.r.put(
            &sec,
            "scan_to_puback",
            ack.json(),
            &format!("scan→PUBACK (subscriber)  {}", ack.text()),
        );
        self.agent_histograms(&sec, &m0, &m1);
        self.per_event(&sec, &s0, &s1, count as u64, rss_max);
        Ok(())
    }

    /// The agent's own view from /metrics: publish→PUBACK (the broker leg) and capture→commit.
    fn agent_histograms(&mut self, sec: &str, m0: &str, m1: &str) {
        for (fam, key, what) in [
            (
                "tracegate_publish_to_ack_seconds",
                "agent_publish_to_ack",
                "publish→PUBACK (agent /metrics)",
            ),
            (
                "tracegate_scan_to_commit_seconds",
                "agent_scan_to_commit",
                "capture→commit (agent /metrics)",
            ),
        ] {
            let (h0, h1) = (histogram(m0, fam), histogram(m1, fam));
            let p50 = histogram_quantile(&h0, &h1, 0.5);
            let p99 = histogram_quantile(&h0, &h1, 0.99);
            if let (Some(p50), Some(p99)) = (p50, p99) {
                let ms = |v: f64| if v.is_finite() { v * 1e3 } else { -1.0 };
                self.r.put(
                    sec,
                    key,
                    json!({"p50_le_ms": ms(p50), "p99_le_ms": ms(p99)}),
                    &format!(
                        "{what}  p50 ≤ {} ms  p99 ≤ {} ms (bucket bounds)",
                        ms(p50),
                        ms(p99)
                    ),
                );
            }
        }
    }

    fn per_event(&mut self, sec: &str, s0: &ProcSnap, s1: &ProcSnap, n: u64, rss_max: u64) {
        let cpu = s1.cpu_secs - s0.cpu_secs;
        let per10k = cpu / n as f64 * 10_000.0;
        self.r.put(
            sec,
            "cpu_secs_per_10k",
            json!(round(per10k, 3)),
            &format!("{per10k:.2} s CPU per 10k events ({cpu:.2} s for {n})"),
        );
        let w = s1.write_bytes - s0.write_bytes;
        let per = w as f64 / n as f64;
        self.r.put(
            sec,
            "disk_write_bytes_per_event",
            json!(round(per, 0)),
            &format!("{per:.0} bytes written to storage per event ({w} in all)"),
        );
        self.r.put(
            sec,
            "rss_max_mib",
            json!(kib_to_mib(rss_max)),
            &format!("RSS max during the phase {}", mb(rss_max)),
        );
    }

    fn ensure_sample(&mut self, a: &mut Running) -> Result<(String, Vec<u8>), String> {
        if self.shared.sample.lock().unwrap().is_none() {
            let w = self.o.window;
            self.send(
                a,
                200,
                Pace::Pipelined {
                    window: w,
                    batch: 32,
                },
                Duration::from_secs(60),
            )?;
            self.wait_delivered(&a.agent, Duration::from_secs(60))?;
        }
        let (topic, payload) = self
            .shared
            .sample
            .lock()
            .unwrap()
            .clone()
            .ok_or("no event payload seen")?;
        let raw_topic = format!("{RAW_PREFIX}{}", &topic[TOPIC_PREFIX.len()..]);
        Ok((raw_topic, payload))
    }

    fn raw_round(
        &mut self,
        sec: &str,
        label: &str,
        topic: &str,
        payload: &[u8],
        n: u64,
    ) -> Result<f64, String> {
        let first = self.next_raw;
        self.next_raw += n;
        self.expected_raw += n;
        let b0 = self.broker.pid().and_then(|p| proc_snap(p).ok());
        let v5 = crate::agent::speaks_mqtt5(&self.o.overrides);
        let run = crate::raw::publish(
            self.broker.port,
            topic,
            payload,
            first,
            n,
            64,
            v5,
            Duration::from_secs(n / 200 + 60),
        )?;
        if !wait_count(
            &self.shared.raw_unique,
            self.expected_raw,
            Duration::from_secs(60),
        ) {
            return Err("the subscriber did not get every raw message".into());
        }
        let b1 = self.broker.pid().and_then(|p| proc_snap(p).ok());
        let (_, last) = self.arrival_span(true, first, n);
        let rate = n as f64 / secs(last - run.first_publish_ns);
        let ack_rate = run.acks as f64 / secs(run.last_ack_ns - run.first_publish_ns);
        let broker_cpu = match (b0, b1) {
            (Some(a), Some(b)) => (b.cpu_secs - a.cpu_secs) / n as f64 * 10_000.0,
            _ => f64::NAN,
        };
        self.r.put(
            sec,
            label,
            json!({"events": n, "rate_per_s": round(rate, 0), "puback_rate_per_s": round(ack_rate, 0), "broker_cpu_secs_per_10k": round(broker_cpu, 3)}),
            &format!("raw rumqttc QoS 1 (inflight 64, {}): {rate:.0}/s at the subscriber ({ack_rate:.0}/s PUBACKs), mosquitto {broker_cpu:.2} s CPU/10k", if v5 { "MQTT 5 with the agent's properties" } else { "MQTT 3.1.1" }),
        );
        Ok(rate)
    }

    fn throughput(&mut self, a: &mut Running) -> Result<(), String> {
        let sec = "throughput".to_string();
        self.r.section(&sec);
        let (topic, payload) = self.ensure_sample(a)?;
        self.r.note(&format!(
            "payload {} bytes on {} (the raw publisher sends the same bytes on {topic})",
            payload.len(),
            self.shared
                .sample
                .lock()
                .unwrap()
                .as_ref()
                .map(|s| s.0.clone())
                .unwrap_or_default()
        ));
        let n = self.o.events;
        let mut best_agent: f64 = 0.0;
        let mut best_raw: f64 = 0.0;
        let mut agent_rates = Vec::new();
        let mut raw_rates = Vec::new();
        for round_no in 1..=self.o.rounds {
            let raw =
                self.raw_round(&sec, &format!("raw_round_{round_no}"), &topic, &payload, n)?;
            best_raw = best_raw.max(raw);
            raw_rates.push(raw);
            let m0 = a.agent.metrics().unwrap_or_default();
            let s0 = a.agent.snap();
            let b0 = self.broker.pid().and_then(|p| proc_snap(p).ok());
            let me0 = proc_snap(std::process::id()).ok();
            a.sampler.reset();
            let w = self.o.window;
            let run = self.send(
                a,
                n as usize,
                Pace::Pipelined {
                    window: w,
                    batch: 32,
                },
                Duration::from_secs(n / 100 + 120),
            )?;
            self.wait_delivered(&a.agent, Duration::from_secs(n / 100 + 120))?;
            let s1 = a.agent.snap();
            let b1 = self.broker.pid().and_then(|p| proc_snap(p).ok());
            let me1 = proc_snap(std::process::id()).ok();
            let m1 = a.agent.metrics().unwrap_or_default();
            let (_, last) = self.arrival_span(false, run.first_seq, n);
            let rate = n as f64 / secs(last - run.sent[0]);
            let accept = n as f64 / secs(run.replied.last().unwrap() - run.sent[0]);
            best_agent = best_agent.max(rate);
            agent_rates.push(rate);
            let cpu = |x: Option<ProcSnap>, y: Option<ProcSnap>| match (x, y) {
                (Some(x), Some(y)) => (y.cpu_secs - x.cpu_secs) / n as f64 * 10_000.0,
                _ => f64::NAN,
            };
            let agent_cpu = (s1.cpu_secs - s0.cpu_secs) / n as f64 * 10_000.0;
            let wb = (s1.write_bytes - s0.write_bytes) as f64 / n as f64;
            let (bc, mc) = (cpu(b0, b1), cpu(me0, me1));
            let h = (
                histogram(&m0, "tracegate_publish_to_ack_seconds"),
                histogram(&m1, "tracegate_publish_to_ack_seconds"),
            );
            let ack_p99 = histogram_quantile(&h.0, &h.1, 0.99)
                .map(|v| v * 1e3)
                .unwrap_or(-1.0);
            self.r.put(
                &sec,
                &format!("agent_round_{round_no}"),
                json!({"events": n, "rate_per_s": round(rate, 0), "accept_rate_per_s": round(accept, 0),
                       "agent_cpu_secs_per_10k": round(agent_cpu, 3), "broker_cpu_secs_per_10k": round(bc, 3),
                       "bench_cpu_secs_per_10k": round(mc, 3), "disk_write_bytes_per_event": round(wb, 0),
                       "rss_max_mib": kib_to_mib(a.sampler.max_kib()), "agent_publish_to_ack_p99_le_ms": ack_p99}),
                &format!(
                    "agent end to end: {rate:.0}/s at the subscriber (OK replies {accept:.0}/s); CPU/10k: agent {agent_cpu:.2} s, mosquitto {bc:.2} s, bench {mc:.2} s; {wb:.0} B/event written; RSS max {}",
                    mb(a.sampler.max_kib())
                ),
            );
        }
        let raw = self.raw_round(
            &sec,
            &format!("raw_round_{}", self.o.rounds + 1),
            &topic,
            &payload,
            n,
        )?;
        best_raw = best_raw.max(raw);
        raw_rates.push(raw);
        self.ceiling = Some(best_raw);
        let ratio = best_agent / best_raw;
        self.r.put(
            &sec,
            "agent_rate_per_s",
            json!(round(best_agent, 0)),
            &format!(
                "{best_agent:.0} events/s (best of {} rounds of {n})",
                self.o.rounds
            ),
        );
        self.r.put(
            &sec,
            "raw_ceiling_per_s",
            json!(round(best_raw, 0)),
            &format!(
                "{best_raw:.0} messages/s (best of {} raw rounds of {n})",
                raw_rates.len()
            ),
        );
        self.r.put(
            &sec,
            "ratio",
            json!(round(ratio, 3)),
            &format!("{ratio:.2} × the raw ceiling"),
        );
        let med = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let (ma, mr) = (med(&mut agent_rates), med(&mut raw_rates));
        self.r.put(
            &sec,
            "median_ratio",
            json!(round(ma / mr, 3)),
            &format!(
                "{:.2} (median agent {ma:.0}/s over median raw {mr:.0}/s)",
                ma / mr
            ),
        );
        Ok(())
    }

    fn backlog(&mut self) -> Result<(), String> {
        let sec = "backlog".to_string();
        self.r.section(&sec);
        let n = self.o.backlog;
        // The subscriber's session (and subscription) is saved by the broker's clean stop.
        if let Some(s) = self.sub.take() {
            s.stop();
        }
        self.broker.stop();
        let mut a = self.start_agent("backlog", n * 2 + 1000, false)?;
        self.r.note(&format!(
            "broker down; the reader pushes {n} codes pipelined (window {}) into a fresh queue",
            self.o.window
        ));
        let s0 = a.agent.snap();
        a.sampler.reset();
        let w = self.o.window;
        let run = self.send(
            &mut a,
            n as usize,
            Pace::Pipelined {
                window: w,
                batch: 32,
            },
            Duration::from_secs(n / 100 + 300),
        )?;
        let fill_secs = secs(run.replied.last().unwrap() - run.sent[0]);
        if !poll_until(Duration::from_secs(120), Duration::from_millis(100), || {
            a.agent.metric("tracegate_queue_depth_events") == Some(n as f64)
        }) {
            return Err(format!(
                "the queue does not show depth {n}\n{}",
                a.agent.log_tail(30)
            ));
        }
        let s1 = a.agent.snap();
        let fill_rss = a.sampler.max_kib().max(s1.rss_kib);
        let stats = a.agent.queue_stats()?;
        let depth = stats.get("depth").and_then(Value::as_u64).unwrap_or(0);
        if depth != n {
            return Err(format!("queue stats says depth {depth}, expected {n}"));
        }
        let store = a.agent.store_bytes();
        self.r.put(
            &sec,
            "events",
            json!(n),
            &format!(
                "{n} queued (tracegate queue stats --json: depth {depth}); queue files {:.0} MB",
                store as f64 / 1e6
            ),
        );
        self.r.put(
            &sec,
            "fill_rate_per_s",
            json!(round(n as f64 / fill_secs, 0)),
            &format!(
                "{:.0} events/s committed with the broker down ({fill_secs:.1} s)",
                n as f64 / fill_secs
            ),
        );
        self.r.put(
            &sec,
            "fill_rss_max_mib",
            json!(kib_to_mib(fill_rss)),
            &format!("RSS max while filling {}", mb(fill_rss)),
        );
        let wb = (s1.write_bytes - s0.write_bytes) as f64 / n as f64;
        self.r.put(
            &sec,
            "fill_disk_write_bytes_per_event",
            json!(round(wb, 0)),
            &format!("{wb:.0} bytes written per event while filling"),
        );
        let cpu = (s1.cpu_secs - s0.cpu_secs) / n as f64 * 10_000.0;
        self.r.put(
            &sec,
            "fill_cpu_secs_per_10k",
            json!(round(cpu, 3)),
            &format!("{cpu:.2} s CPU per 10k events while filling"),
        );

        // The broker comes back: drain.
        a.sampler.reset();
        let dups0 = self.shared.agent.lock().unwrap().duplicates;
        let broker_up = now_ns();
        self.broker.restart()?;
        self.sub = Some(Subscriber::connect(self.broker.port, self.shared.clone())?);
        let timeout = Duration::from_secs(n / 500 + 300);
        let progress_every = Duration::from_secs(10);
        let deadline = std::time::Instant::now() + timeout;
        while !wait_count(
            &self.shared.agent_unique,
            self.expected_agent,
            progress_every,
        ) {
            if std::time::Instant::now() >= deadline {
                return Err(format!(
                    "drain: the subscriber has {} of {} events\n{}",
                    self.shared.agent_unique.load(Ordering::SeqCst),
                    self.expected_agent,
                    a.agent.log_tail(30)
                ));
            }
            let left = self.expected_agent - self.shared.agent_unique.load(Ordering::SeqCst);
            println!(
                "  … draining, {left} to go, RSS {}",
                mb(a.agent.snap().rss_kib)
            );
        }
        self.wait_delivered(&a.agent, Duration::from_secs(120))?;
        let s2 = a.agent.snap();
        let drain_rss = a.sampler.max_kib().max(s2.rss_kib);
        let (first, last) = self.arrival_span(false, run.first_seq, n);
        let drain = n as f64 / secs(last - first);
        let from_up = n as f64 / secs(last - broker_up);
        let dups = self.shared.agent.lock().unwrap().duplicates - dups0;
        self.r.put(
            &sec,
            "drain_rate_per_s",
            json!(round(drain, 0)),
            &format!(
                "{drain:.0} events/s: first to last arrival at the subscriber ({:.1} s)",
                secs(last - first)
            ),
        );
        self.r.put(&sec, "drain_secs_from_broker_start", json!(round(secs(last - broker_up), 2)), &format!("{:.1} s from the broker's start to the last event ({from_up:.0}/s, includes the agent's reconnect backoff ≤ 1 s)", secs(last - broker_up)));
        self.r.put(
            &sec,
            "drain_duplicates",
            json!(dups),
            &format!("{dups} duplicate deliveries"),
        );
        self.r.put(
            &sec,
            "drain_rss_max_mib",
            json!(kib_to_mib(drain_rss)),
            &format!("RSS max while draining {}", mb(drain_rss)),
        );
        self.r.put(
            &sec,
            "drain_rss_anon_mib",
            json!(kib_to_mib(s2.anon_kib)),
            &format!(
                "RSS at the end of the drain {}, of it anonymous {}",
                mb(s2.rss_kib),
                mb(s2.anon_kib)
            ),
        );
        let cpu = (s2.cpu_secs - s1.cpu_secs) / n as f64 * 10_000.0;
        self.r.put(
            &sec,
            "drain_cpu_secs_per_10k",
            json!(round(cpu, 3)),
            &format!("{cpu:.2} s CPU per 10k events while draining"),
        );
        let wb = (s2.write_bytes - s1.write_bytes) as f64 / n as f64;
        self.r.put(&sec, "drain_disk_write_bytes_per_event", json!(round(wb, 0)), &format!("{wb:.0} bytes written per event while draining (marking delivered, pruning retention)"));
        self.r.put(
            &sec,
            "rss_peak_mib",
            json!(kib_to_mib(s2.hwm_kib)),
            &format!("VmHWM of the backlog agent {}", mb(s2.hwm_kib)),
        );
        if self.ceiling.is_none() {
            let (topic, payload) = self.ensure_sample(&mut a)?;
            let n_raw = self.o.events;
            let raw = self.raw_round(&sec, "raw_ceiling", &topic, &payload, n_raw)?;
            self.ceiling = Some(raw);
        }
        let ceiling = self.ceiling.unwrap();
        let ratio = drain / ceiling;
        self.r.put(
            &sec,
            "drain_ratio",
            json!(round(ratio, 3)),
            &format!("{ratio:.2} × the raw ceiling ({ceiling:.0}/s)"),
        );
        self.stop_agent(a)
    }
}

/// The first three fields of /proc/loadavg.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The machine and the software measured.
fn machine(r: &mut Report, o: &Opts, work: &Path) {
    let sec = "machine";
    r.section(sec);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "?".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    r.put(sec, "cpus", json!(cpus), &format!("{cpus} × {model}"));
    r.put(sec, "cpu_model", json!(model), "");
    r.put(sec, "memory", json!(mem), &mem);
    r.put(sec, "kernel", json!(kernel.trim()), kernel.trim());
    let load = loadavg();
    r.put(
        sec,
        "loadavg_at_start",
        json!(load),
        &format!("{load} (1, 5, 15 min; other work on the machine)"),
    );
    let (mount, fstype, dev) = filesystem_of(work);
    r.put(
        sec,
        "work_dir",
        json!({"path": work.display().to_string(), "mount": mount, "fs": fstype, "device": dev}),
        &format!("{} on {mount} ({fstype}, {dev})", work.display()),
    );
    if fstype == "tmpfs" || fstype == "ramfs" {
        r.note("WARNING: the queue is on a RAM file system; fsync costs and disk writes are not real. Use --dir on the real disk.");
    }
    if o.mode != Mode::Sizes {
        let v = Command::new(&o.agent)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        r.put(
            sec,
            "agent",
            json!({"path": o.agent.display().to_string(), "version": v}),
            &format!("{} ({v})", o.agent.display()),
        );
        let m = find_program("mosquitto", &["/usr/sbin/mosquitto"])
            .and_then(|p| Command::new(p).arg("-h").output().ok())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default();
        r.put(sec, "broker", json!(m), &m);
    }
}

/// Stripped sizes of the agent binary (x86-64 and, when built, aarch64).
fn sizes(r: &mut Report, o: &Opts, work: &Path) {
    let sec = "binary size";
    r.section(sec);
    let arm_default = o.agent.parent().and_then(|release| {
        let profile = release.file_name()?.to_owned();
        Some(
            release
                .parent()?
                .join("aarch64-unknown-linux-gnu")
                .join(profile)
                .join("tracegate"),
        )
    });
    let arm = o.aarch64.clone().or(arm_default);
    let mut entries = vec![("x86_64", Some(o.agent.clone()), "strip")];
    entries.push(("aarch64", arm, "aarch64-linux-gnu-strip"));
    for (arch, path, strip) in entries {
        let Some(path) = path.filter(|p| p.is_file()) else {
            r.put(sec, arch, Value::Null, "not built (cargo build --release --target aarch64-unknown-linux-gnu -p tracegate; see docs/performance.md)");
            continue;
        };
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let copy = work.join(format!("tracegate-{arch}"));
        let stripped = std::fs::copy(&path, &copy).ok().and_then(|_| {
            let tool = find_program(strip, &[]).or_else(|| find_program("llvm-strip", &[]))?;
            let ok = Command::new(tool).arg(&copy).status().ok()?.success();
            ok.then(|| std::fs::metadata(&copy).map(|m| m.len()).ok())
                .flatten()
        });
        let text = match stripped {
            Some(s) => format!(
                "{:.2} MB stripped ({s} bytes; {size} as built) — {}",
                s as f64 / 1e6,
                path.display()
            ),
            None => format!(
                "{size} bytes as built (no {strip} to strip it) — {}",
                path.display()
            ),
        };
        r.put(
            sec,
            arch,
            json!({"path": path.display().to_string(), "bytes": size, "stripped_bytes": stripped}),
            &text,
        );
    }
}

/// The targets, pass or miss, from whatever was measured.
fn targets(r: &mut Report, o: &Opts) {
    let sec = "targets";
    r.section(sec);
    let load = loadavg();
    r.put(sec, "loadavg_at_end", json!(load), &load);
    if o.mode == Mode::Smoke {
        r.note("smoke run: figures are not meaningful and not asserted");
    }
    let f = |s: &str, k: &str| r.get(s, k).and_then(Value::as_f64);
    let fs =
        |s: &str, k: &str, sub: &str| r.get(s, k).and_then(|v| v.get(sub)).and_then(Value::as_f64);
    let rows: Vec<(&str, Option<f64>, &str, bool)> = vec![
        (
            "throughput ≥ 0.7 × raw ceiling",
            f("throughput", "ratio"),
            "×",
            f("throughput", "ratio").map(|v| v >= 0.7).unwrap_or(false),
        ),
        (
            "p99 scan→PUBACK ≤ 10 ms at 1k/s",
            fs("1000 events/s", "scan_to_puback", "p99_ms"),
            "ms",
            fs("1000 events/s", "scan_to_puback", "p99_ms")
                .map(|v| v <= 10.0)
                .unwrap_or(false),
        ),
        (
            "drain ≥ 0.8 × raw ceiling",
            f("backlog", "drain_ratio"),
            "×",
            f("backlog", "drain_ratio")
                .map(|v| v >= 0.8)
                .unwrap_or(false),
        ),
        (
            "RSS ≤ 10 MiB idle",
            f("idle (fresh, connected)", "rss_mib"),
            "MiB",
            f("idle (fresh, connected)", "rss_mib")
                .map(|v| v <= 10.0)
                .unwrap_or(false),
        ),
        (
            "RSS ≤ 16 MiB with the 1M backlog",
            f("backlog", "rss_peak_mib"),
            "MiB",
            f("backlog", "rss_peak_mib")
                .map(|v| v <= 16.0)
                .unwrap_or(false),
        ),
        (
            "≤ 1.5 KB written per event at 1k/s",
            f("1000 events/s", "disk_write_bytes_per_event"),
            "B",
            f("1000 events/s", "disk_write_bytes_per_event")
                .map(|v| v <= 1500.0)
                .unwrap_or(false),
        ),
        (
            "nothing written while idle",
            f("idle (fresh, connected)", "disk_write_bytes")
                .map(|a| a + f("idle (after load)", "disk_write_bytes").unwrap_or(0.0)),
            "B",
            f("idle (fresh, connected)", "disk_write_bytes")
                .map(|a| a + f("idle (after load)", "disk_write_bytes").unwrap_or(0.0) == 0.0)
                .unwrap_or(false),
        ),
    ];
    let mut out = Vec::new();
    for (name, value, unit, pass) in rows {
        let Some(v) = value else { continue };
        let verdict = match (o.mode == Mode::Smoke, pass) {
            (true, _) => "n/a ",
            (false, true) => "PASS",
            (false, false) => "MISS",
        };
        out.push((
            name.to_string(),
            json!({"value": v, "unit": unit, "pass": pass}),
        ));
        println!("  {verdict}  {name:<40} {v} {unit}");
    }
    for (k, v) in out {
        if let Some(Value::Object(m)) = r.sections.get_mut(sec) {
            m.insert(k, v);
        }
    }
}

/// Waits until the agent has written nothing for [`SETTLED_AFTER`] (at most [`SETTLE_AT_MOST`]):
/// the delivered marks of a load's last events are committed up to a second later, and that
/// commit may start the checkpoint of the WAL the load wrote. Returns the bytes written
/// meanwhile and the seconds waited.
fn settle(agent: &Agent) -> (u64, f64) {
    let start = agent.snap();
    let mut last = start.write_bytes;
    let mut quiet_since = std::time::Instant::now();
    let began = std::time::Instant::now();
    while quiet_since.elapsed() < SETTLED_AFTER && began.elapsed() < SETTLE_AT_MOST {
        std::thread::sleep(Duration::from_millis(100));
        let now = agent.snap().write_bytes;
        if now != last {
            last = now;
            quiet_since = std::time::Instant::now();
        }
    }
    (
        last.saturating_sub(start.write_bytes),
        began.elapsed().as_secs_f64(),
    )
}

/// How long the agent must write nothing to count as settled: longer than the wait of the
/// delivered marks for a commit to ride with (1 s), plus a checkpoint's start.
const SETTLED_AFTER: Duration = Duration::from_millis(2500);
/// A settle never takes longer than this.
const SETTLE_AT_MOST: Duration = Duration::from_secs(20);
