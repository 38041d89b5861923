//! The Markdown report: one table row per figure with firstcall's measure, the reference from the
//! same run, their ratio and the target, then the machine and the details behind the rows.

use std::fmt::Write;

#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub measure: String,
    pub firstcall: String,
    pub reference: String,
    pub ratio: String,
    pub target: String,
    /// None: informational, no target.
    pub met: Option<bool>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub title: String,
    pub machine: Vec<(String, String)>,
    pub rows: Vec<Row>,
    /// Further sections: heading and Markdown body.
    pub sections: Vec<(String, String)>,
}

impl Report {
    /// Adds a row; `target` is the target's text and whether it was met (None: no target).
    pub fn row(&mut self, figure: &str, measure: &str, firstcall: String, reference: String, ratio: String, target: (&str, Option<bool>)) {
        let (target, met) = target;
        self.rows.push(Row { figure: figure.into(), measure: measure.into(), firstcall, reference, ratio, target: target.into(), met });
    }

    /// The table alone (README quotes it).
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str("| # | measure | firstcall | reference (same run) | ratio | target | met |\n|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ =
                writeln!(s, "| {} | {} | {} | {} | {} | {} | {} |", r.figure, r.measure, r.firstcall, r.reference, r.ratio, r.target, met);
        }
        s
    }

    pub fn machine_table(&self) -> String {
        let mut s = String::from("| | |\n|---|---|\n");
        for (k, v) in &self.machine {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        s
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("# {}\n\n", self.title);
        s.push_str(&self.table());
        s.push_str("\n## Machine\n\n");
        s.push_str(&self.machine_table());
        for (h, body) in &self.sections {
            let _ = write!(s, "\n## {h}\n\n{}\n", body.trim_end());
        }
        s
    }
}

/// One measure over the rounds of a run (each figure and its reference run alternately, a
/// round at a time), in round order: its median and its spread.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<f64>);

impl Samples {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Samples {
        Samples(values.into_iter().collect())
    }

    /// Round by round, `a` over `b` (rounds without a reference are left out).
    pub fn ratios(a: &Samples, b: &Samples) -> Samples {
        Samples::of(a.0.iter().zip(&b.0).filter(|(_, b)| **b > 0.0).map(|(a, b)| a / b))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn median(&self) -> f64 {
        let v = self.sorted();
        let n = v.len();
        match n {
            0 => 0.0,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// The median, then the lowest and highest in brackets when there is more than one round:
    /// `0.23× (0.21–0.25)`.
    pub fn show(&self, number: impl Fn(f64) -> String, unit: &str) -> String {
        let v = self.sorted();
        match (v.first(), v.last()) {
            (Some(lo), Some(hi)) if v.len() > 1 => format!("{}{unit} ({}–{})", number(self.median()), number(*lo), number(*hi)),
            (Some(_), _) => format!("{}{unit}", number(self.median())),
            _ => "–".into(),
        }
    }

    /// A rate per second: `1943/s (1900–2010)`.
    pub fn rate(&self) -> String {
        self.show(rate_number, "/s")
    }

    /// A ratio: `0.23× (0.21–0.25)`.
    pub fn times(&self) -> String {
        self.show(|v| format!("{v:.2}"), "×")
    }

    /// Milliseconds: `10.2 ms (5.1–12.0)`.
    pub fn ms(&self) -> String {
        self.show(|v| format!("{v:.1}"), " ms")
    }
}

fn rate_number(v: f64) -> String {
    if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

/// The 50th and 99th percentiles and the maximum of some latencies, ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Quantiles {
    /// Nearest rank: the smallest value with at least that share of the values at or below it.
    pub fn of(mut v: Vec<f64>) -> Quantiles {
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            v[i]
        };
        Quantiles { p50: rank(0.5), p99: rank(0.99), max: v.last().copied().unwrap_or(0.0) }
    }

    pub fn show(&self) -> String {
        format!("p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", self.p50, self.p99, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::Samples;

    #[test]
    fn ratios_pair_the_rounds_as_they_ran_not_by_rank() {
        // Round 2's figure is the highest and its reference the lowest: its ratio is the spread's top.
        let firstcall = Samples::of([10456.0, 10736.0, 10228.0]);
        let reference = Samples::of([11755.0, 10213.0, 12917.0]);
        assert_eq!(Samples::ratios(&firstcall, &reference).times(), "0.89× (0.79–1.05)");
        assert_eq!(firstcall.rate(), "10456/s (10228–10736)");
        assert_eq!(Samples::of([2.0, 1.0, 4.0, 3.0]).median(), 2.5);
        assert_eq!(Samples::of([0.5]).times(), "0.50×");
    }
}
