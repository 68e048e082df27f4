//! The results table: rates, ratios to the bound, latencies, failures, memory and targets.

use crate::load::Outcome;
use crate::server::{Memory, Usage};

/// The informational targets of a scenario (printed, never asserted).
#[derive(Clone, Copy)]
pub struct Targets {
    /// Least rate as a ratio to the upper bound's.
    pub min_ratio: Option<f64>,
    /// Least rate as a multiple of the Node peer's.
    pub min_peer_multiple: Option<f64>,
    pub max_p99_ms: Option<f64>,
    /// Most p99 as a multiple of p50: the tail stays close to the typical request.
    pub max_tail: Option<f64>,
    pub max_rss_growth_mb: Option<f64>,
}

impl Targets {
    pub const NONE: Targets = Targets {
        min_ratio: None,
        min_peer_multiple: None,
        max_p99_ms: None,
        max_tail: None,
        max_rss_growth_mb: None,
    };
}

/// One line of the table.
pub struct Row {
    number: Option<u8>,
    label: String,
    outcome: Outcome,
    targets: Targets,
    memory: Option<Memory>,
    /// The server's use during the timed load.
    usage: Option<Usage>,
    rss_growth: Option<RssGrowth>,
}

/// How much the server's RSS grew over the soak, and whether the soak ran to its count
/// (a shorter one can show a miss, never that the target is met).
#[derive(Clone, Copy)]
pub struct RssGrowth {
    pub bytes: i64,
    pub complete: bool,
}

/// Whether one target was met.
#[derive(PartialEq)]
enum Check {
    Met,
    Missed,
    NotShown,
}

impl Check {
    fn of(ok: bool) -> Check {
        if ok {
            Check::Met
        } else {
            Check::Missed
        }
    }
}

impl Row {
    pub fn new(name: &str, outcome: Outcome, targets: &Targets) -> Row {
        Row {
            number: None,
            label: name.to_owned(),
            outcome,
            targets: *targets,
            memory: None,
            usage: None,
            rss_growth: None,
        }
    }

    pub fn numbered(mut self, number: u8) -> Row {
        self.number = Some(number);
        self.label = format!("({number}) {}", self.label);
        self
    }

    pub fn memory(mut self, memory: Memory) -> Row {
        self.memory = Some(memory);
        self
    }

    pub fn usage(mut self, usage: Usage) -> Row {
        self.usage = Some(usage);
        self
    }

    /// The server's CPU time per accepted request, in microseconds.
    fn cpu_per_accepted_us(&self) -> Option<f64> {
        self.usage.map(|u| u.cpu_us_per(self.outcome.accepted))
    }

    pub fn rss_growth(mut self, growth: RssGrowth) -> Row {
        self.rss_growth = Some(growth);
        self
    }

    pub fn rate(&self) -> f64 {
        self.outcome.accepted_per_sec()
    }

    fn latency_ms(&self, quantile: f64) -> f64 {
        self.outcome.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// p99 over p50.
    fn tail(&self) -> f64 {
        self.latency_ms(0.99) / self.latency_ms(0.50).max(1e-3)
    }

    fn non_2xx(&self) -> String {
        let mut parts: Vec<String> = self
            .outcome
            .non_2xx
            .iter()
            .map(|(status, n)| format!("{status}: {}", thousands(*n)))
            .collect();
        if self.outcome.errors > 0 {
            parts.push(format!("no answer: {}", thousands(self.outcome.errors)));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }

    fn verdict(&self, ratio: f64, peer_multiple: Option<f64>) -> String {
        let t = &self.targets;
        let mut checks: Vec<(Check, String)> = Vec::new();
        let sign =
            |ok: bool, met: &'static str, missed: &'static str| if ok { met } else { missed };
        if let Some(min) = t.min_ratio {
            let ok = ratio >= min;
            let text = format!("ratio {ratio:.2} {} {min:.2}", sign(ok, ">=", "<"));
            checks.push((Check::of(ok), text));
        }
        match (t.min_peer_multiple, peer_multiple) {
            (Some(min), Some(multiple)) => {
                let ok = multiple >= min;
                let text = format!("{multiple:.2}x peer {} {min:.1}x", sign(ok, ">=", "<"));
                checks.push((Check::of(ok), text));
            }
            (Some(_), None) => checks.push((Check::NotShown, "no peer figure".into())),
            _ => {}
        }
        if let Some(max) = t.max_p99_ms {
            let p99 = self.latency_ms(0.99);
            let ok = p99 <= max;
            let text = format!("p99 {p99:.1} {} {max:.0} ms", sign(ok, "<=", ">"));
            checks.push((Check::of(ok), text));
        }
        if let Some(max) = t.max_tail {
            let tail = self.tail();
            let ok = tail <= max;
            let text = format!("p99/p50 {tail:.1} {} {max:.0}", sign(ok, "<=", ">"));
            checks.push((Check::of(ok), text));
        }
        if let (Some(max), Some(growth)) = (t.max_rss_growth_mb, self.rss_growth) {
            let mb = growth.bytes as f64 / 1_048_576.0;
            let ok = mb <= max;
            let mut text = format!("RSS {mb:+.1} {} {max:.0} MB", sign(ok, "<=", ">"));
            let check = match (ok, growth.complete) {
                (true, false) => {
                    text.push_str(" so far (soak cut short)");
                    Check::NotShown
                }
                _ => Check::of(ok),
            };
            checks.push((check, text));
        }
        if checks.is_empty() {
            return "no target".into();
        }
        let verdict = if checks.iter().any(|(c, _)| *c == Check::Missed) {
            "NO"
        } else if checks.iter().any(|(c, _)| *c == Check::NotShown) {
            "not shown"
        } else {
            "yes"
        };
        let details: Vec<String> = checks.into_iter().map(|(_, text)| text).collect();
        format!("{verdict}: {}", details.join("; "))
    }
}

pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints the table in Markdown, each rate also as a ratio to `bound`'s and a multiple of
/// the Node peer's (when it ran).
pub fn print_table(bound: &Row, peer: Option<&Row>, rows: &[Row]) {
    println!();
    println!("| scenario | accepted/s | ratio to bound | x Node peer | p50 | p90 | p99 | p99/p50 | max | non-2xx | RSS peak / now | server CPU / accepted | target met? |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|");
    let baselines = std::iter::once(bound).chain(peer);
    for row in baselines.chain(rows) {
        let ratio = row.rate() / bound.rate().max(1e-9);
        let peer_multiple = peer.map(|p| row.rate() / p.rate().max(1e-9));
        let memory = row.memory.map_or("n/a".into(), |m| {
            format!("{:.0} / {:.0} MB", mb(m.peak), mb(m.current))
        });
        let cpu = row
            .cpu_per_accepted_us()
            .map_or("n/a".into(), |us| format!("{us:.0} µs"));
        let is_baseline = std::ptr::eq(row, bound) || peer.is_some_and(|p| std::ptr::eq(row, p));
        let verdict = if is_baseline {
            "-".into()
        } else {
            row.verdict(ratio, peer_multiple)
        };
        println!(
            "| {} | {} | {ratio:.2} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} | {:.2} ms | {} | {memory} | {cpu} | {verdict} |",
            row.label,
            thousands(row.rate().round() as u64),
            peer_multiple.map_or("-".into(), |m| format!("{m:.2}")),
            row.latency_ms(0.50),
            row.latency_ms(0.90),
            row.latency_ms(0.99),
            row.tail(),
            row.outcome.latency.max() as f64 / 1000.0,
            row.non_2xx(),
        );
    }
}

/// One measurement of what the delivery log costs: a run of (1), with the log, and one of
/// (9), the same load without it.
pub struct LogPair {
    rate_on: f64,
    rate_off: f64,
    /// The server's CPU per delivery with and without the log, which moves less with what
    /// else the machine runs.
    cpu_us: Option<(f64, f64)>,
}

impl LogPair {
    pub fn new(on: &Row, off: &Row) -> LogPair {
        LogPair {
            rate_on: on.rate(),
            rate_off: off.rate(),
            cpu_us: on.cpu_per_accepted_us().zip(off.cpu_per_accepted_us()),
        }
    }

    /// The pair among the table's rows, when both (1) and (9) ran.
    pub fn in_rows(rows: &[Row]) -> Option<LogPair> {
        let row = |n| rows.iter().find(|r| r.number == Some(n));
        Some(LogPair::new(row(1)?, row(9)?))
    }

    /// The change in accepted/s with the log on, in per cent (negative: slower).
    fn rate_change(&self) -> f64 {
        (self.rate_on / self.rate_off.max(1e-9) - 1.0) * 100.0
    }

    /// The change in server CPU per delivery with the log on, in per cent.
    fn cpu_change(&self) -> Option<f64> {
        self.cpu_us
            .map(|(on, off)| (on / off.max(1e-9) - 1.0) * 100.0)
    }
}

/// Each pair's cost of the delivery log and, over several pairs, the median: one pair can
/// be far off on a machine whose speed moves from run to run.
pub fn print_log_cost(pairs: &[LogPair]) {
    for (i, pair) in pairs.iter().enumerate() {
        println!(
            "\ndelivery log, pair {} of {}: (1) {} accepted/s with it, (9) {} without: {:+.1}%",
            i + 1,
            pairs.len(),
            thousands(pair.rate_on.round() as u64),
            thousands(pair.rate_off.round() as u64),
            pair.rate_change()
        );
        if let (Some((on, off)), Some(change)) = (pair.cpu_us, pair.cpu_change()) {
            println!(
                "delivery log, pair {} of {}: server CPU per delivery {on:.0} µs with it, {off:.0} µs without: {change:+.1}%",
                i + 1,
                pairs.len(),
            );
        }
    }
    if pairs.len() > 1 {
        let rate = median(pairs.iter().map(LogPair::rate_change).collect());
        let cpu: Vec<f64> = pairs.iter().filter_map(LogPair::cpu_change).collect();
        let cpu = if cpu.is_empty() {
            String::new()
        } else {
            format!(", server CPU per delivery {:+.1}%", median(cpu))
        };
        println!(
            "\ndelivery log, median of {} pairs: accepted/s {rate:+.1}%{cpu} (target: a drop of at most 10%)",
            pairs.len()
        );
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::{median, thousands};

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_two() {
        assert_eq!(median(vec![14.0, -4.0, 31.0]), 14.0);
        assert_eq!(median(vec![12.0, 2.0, 30.0, 14.0]), 13.0);
        assert_eq!(median(vec![-3.0]), -3.0);
    }

    #[test]
    fn groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
