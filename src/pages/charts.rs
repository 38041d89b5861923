//! Charts for the sales-ops dashboard, drawn on the server as inline SVG: where the promise made
//! at the order starts to break. How long customers wait for their first call, which reps are
//! slowest, how many first calls happen on time week by week, how the promises made on those
//! calls end (kept, slipped or dropped), and which gaps the recaps find most often.
//!
//! Every function is pure: it takes rows the caller has already counted and returns one
//! `<figure class="chart">` holding the SVG (with a `<title>` and a `<desc>` that says the
//! numbers in words), a `<figcaption>`, and the same numbers as a table in a `<details>`, for
//! screen readers and for copying. The markup fits the pages' Content-Security-Policy: no
//! scripts, no links or references of any kind, no images, no fonts; colours and sizes are
//! presentation attributes. Each SVG has a `viewBox` 640 units wide and scales to its container,
//! so it reads on a phone as on a desktop; no text is smaller than 13 units. Text from data (rep
//! names, labels, months) is escaped; numbers are never NaN or infinite.

use std::fmt::{self, Write as _};

use chrono::NaiveDate;

/// One rep's median time from order to first call done, over the calls they made.
#[derive(Debug, Clone, PartialEq)]
pub struct RepMedian {
    pub rep: String,
    pub median_hours: f64,
    pub calls: u32,
}

/// First calls of one week (starting on `week_start`) done by their due time, and those done late.
#[derive(Debug, Clone, PartialEq)]
pub struct WeekOnTime {
    pub week_start: NaiveDate,
    pub on_time: u32,
    pub late: u32,
}

/// How the promises due in one month ended: delivered on time, slipped to a later date, dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthPromises {
    /// The month as the dashboard shows it, e.g. "Dec 2026".
    pub month: String,
    pub on_time: u32,
    pub slipped: u32,
    pub dropped: u32,
}

/// How many gaps of one kind the recaps found, e.g. "Uncovered must-have".
#[derive(Debug, Clone, PartialEq)]
pub struct GapCount {
    pub label: String,
    pub count: u32,
}

/// Width of every chart's `viewBox`.
const W: f64 = 640.0;
/// Space left and right of the bars.
const SIDE: f64 = 16.0;
/// Labels: bar names, legend, notes.
const FONT: f64 = 14.0;
/// Numbers on bars and axes.
const SMALL: f64 = 13.0;
/// A generous estimate of a glyph's width, as a share of the font size, to keep texts apart.
const GLYPH: f64 = 0.6;
/// Vertical bar charts: room above the plot (numbers on top of bars) and below it (two lines of
/// labels).
const TOP: f64 = 28.0;
const BOTTOM: f64 = 48.0;
/// Horizontal bar charts: one row is a label line, then the bar with its value after it.
const ROW: f64 = 46.0;
const BAR_H: f64 = 18.0;
/// Longer labels are cut (the table has them whole).
const MAX_LABEL_CHARS: usize = 70;
/// Horizontal charts show this many rows at most.
const MAX_REPS: usize = 15;
const MAX_GAP_KINDS: usize = 10;

const INK: &str = "#222222";
const MUTED: &str = "#5f5f5f";
const AXIS: &str = "#8a8a8a";
const GRID: &str = "#d6d6d6";
const BAR: &str = "#3b6ea8";
const ON_TIME: &str = "#2e7d32";
const SLIPPED: &str = "#f2a900";
const DROPPED: &str = "#c62828";

/// The buckets of [`order_to_first_call`]: label and upper bound in hours (exclusive).
const BUCKETS: [(&str, f64); 7] = [
    ("< 4 h", 4.0),
    ("4–8 h", 8.0),
    ("8–24 h", 24.0),
    ("1–2 days", 48.0),
    ("2–3 days", 72.0),
    ("3–5 days", 120.0),
    ("> 5 days", f64::INFINITY),
];

/// How long customers wait between their order and the first call marked done, as a histogram
/// of hours in fixed buckets from "< 4 h" to "> 5 days": sales ops see at a glance whether the
/// first call still comes the same day or has started to take days. A bucket includes its lower
/// bound (4.0 h is in "4–8 h"); a negative time counts as "< 4 h"; values that are not numbers
/// are left out.
pub fn order_to_first_call(hours: &[f64]) -> String {
    const ID: &str = "chart-order-to-call";
    const TITLE: &str = "Time from order to first call";
    let mut counts = [0u64; BUCKETS.len()];
    for &h in hours.iter().filter(|h| h.is_finite()) {
        let bucket = BUCKETS.iter().position(|(_, upper)| h < *upper).unwrap_or(BUCKETS.len() - 1);
        counts[bucket] += 1;
    }
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return empty(ID, TITLE);
    }
    let words: Vec<String> = BUCKETS.iter().zip(counts).map(|((label, _), n)| format!("{label}: {n}")).collect();
    let table = Table {
        head: &["Time to first call", "Calls"],
        rows: BUCKETS.iter().zip(counts).map(|((label, _), n)| vec![(*label).to_string(), n.to_string()]).collect(),
    };
    let chart = Chart {
        id: ID,
        title: TITLE,
        desc: format!("Time from order to the first call marked done, for {}: {}.", plural(total, "call", "calls"), words.join(", ")),
        height: 280.0,
        table: Some(table),
    };
    figure(&chart, |out| {
        let cols = Columns { left: SIDE, width: W - 2.0 * SIDE, n: BUCKETS.len() };
        let base = chart.height - BOTTOM;
        let scale = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
        for (i, ((label, _), n)) in BUCKETS.iter().zip(counts).enumerate() {
            let h = n as f64 / scale * (base - TOP);
            let (cx, bw) = (cols.center(i), cols.bar_width());
            write!(
                out,
                r#"<rect class="bar" data-label="{}" data-value="{n}" x="{}" y="{}" width="{}" height="{}" fill="{BAR}"><title>{}: {}</title></rect>"#,
                esc(label),
                N(cx - bw / 2.0),
                N(base - h),
                N(bw),
                N(h),
                esc(label),
                plural(n, "call", "calls"),
            )?;
            text(out, cx, base - h - 6.0, SMALL, "middle", INK, &n.to_string())?;
        }
        baseline(out, SIDE, W - SIDE, base)?;
        let labels: Vec<String> = BUCKETS.iter().map(|(label, _)| (*label).to_string()).collect();
        x_labels(out, &labels, &cols, base)
    })
}

/// The median time from order to first call done for each rep, slowest first, as horizontal
/// bars labelled like "6.5 h (12 calls)" (in days from 48 h on): sales ops see who keeps
/// customers waiting, and whether a slow median rests on many calls or on a few. The 15 slowest
/// are drawn and the chart says how many more there are; the table lists every rep.
pub fn median_per_rep(rows: &[RepMedian]) -> String {
    const ID: &str = "chart-median-per-rep";
    const TITLE: &str = "Median time to first call per rep";
    if rows.is_empty() {
        return empty(ID, TITLE);
    }
    let mut rows: Vec<RepMedian> = rows.iter().map(|r| RepMedian { median_hours: hours(r.median_hours), ..r.clone() }).collect();
    rows.sort_by(|a, b| b.median_hours.total_cmp(&a.median_hours).then_with(|| a.rep.cmp(&b.rep)));
    let value = |r: &RepMedian| format!("{} ({})", duration(r.median_hours), plural(r.calls.into(), "call", "calls"));
    let shown = &rows[..rows.len().min(MAX_REPS)];
    let more = rows.len() - shown.len();
    let mut words: Vec<String> = shown.iter().map(|r| format!("{} {}", r.rep, value(r))).collect();
    if more > 0 {
        words.push(format!("and {} not shown", plural(more as u64, "more rep", "more reps")));
    }
    let bars: Vec<HBar> = shown.iter().map(|r| HBar { label: r.rep.clone(), value: r.median_hours, text: value(r) }).collect();
    let table = Table {
        head: &["Rep", "Median time to first call", "Calls"],
        rows: rows.iter().map(|r| vec![r.rep.clone(), duration(r.median_hours), r.calls.to_string()]).collect(),
    };
    let chart = Chart {
        id: ID,
        title: TITLE,
        desc: format!("Median time to first call per rep, slowest first: {}.", words.join(", ")),
        height: hbars_height(bars.len(), more),
        table: Some(table),
    };
    figure(&chart, |out| hbars(out, &bars, more, "reps"))
}

/// The share of first calls done by their due time, one bar per week (oldest first) from 0 to
/// 100 %, with the rate on top and gridlines at 0, 50 and 100 %: sales ops see whether the team
/// keeps its word week after week, and when it started to slip. A week without calls says "no
/// calls" instead of drawing a bar that would read as 0 %.
pub fn on_time_per_week(weeks: &[WeekOnTime]) -> String {
    const ID: &str = "chart-on-time-per-week";
    const TITLE: &str = "First calls on time per week";
    if weeks.is_empty() {
        return empty(ID, TITLE);
    }
    let mut weeks = weeks.to_vec();
    weeks.sort_by_key(|w| w.week_start);
    let labels: Vec<String> = weeks.iter().map(|w| w.week_start.format("%a %-d %b").to_string()).collect();
    // The on-time rate of each week, 0 to 1; none for a week without calls.
    let rates: Vec<Option<f64>> = weeks
        .iter()
        .map(|w| {
            let total = u64::from(w.on_time) + u64::from(w.late);
            (total > 0).then(|| f64::from(w.on_time) / total as f64)
        })
        .collect();
    let words: Vec<String> = weeks
        .iter()
        .zip(&labels)
        .zip(&rates)
        .map(|((w, label), rate)| match rate {
            Some(r) => format!("{label} {} ({} of {} on time)", percent(*r), w.on_time, u64::from(w.on_time) + u64::from(w.late)),
            None => format!("{label} no calls"),
        })
        .collect();
    let table = Table {
        head: &["Week of", "On time", "Late", "On-time rate"],
        rows: weeks
            .iter()
            .zip(&labels)
            .zip(&rates)
            .map(|((w, label), rate)| {
                vec![label.clone(), w.on_time.to_string(), w.late.to_string(), rate.map_or_else(|| "no calls".to_string(), percent)]
            })
            .collect(),
    };
    let chart = Chart {
        id: ID,
        title: TITLE,
        desc: format!("Share of first calls done on time, per week: {}.", words.join(", ")),
        height: 280.0,
        table: Some(table),
    };
    figure(&chart, |out| {
        let left = 52.0;
        let cols = Columns { left, width: W - left - SIDE, n: weeks.len() };
        let base = chart.height - BOTTOM;
        let plot = base - TOP;
        for (share, label) in [(0.0, "0 %"), (0.5, "50 %"), (1.0, "100 %")] {
            let y = base - share * plot;
            let stroke = if share == 0.0 { AXIS } else { GRID };
            write!(out, r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{stroke}" stroke-width="1"/>"#, N(left), N(y), N(W - SIDE), N(y))?;
            text(out, left - 6.0, y + 4.0, SMALL, "end", MUTED, label)?;
        }
        // Rates on top only when every one fits over its bar; the table always has them.
        let rates_fit = text_width("100 %", SMALL) <= cols.slot() - 2.0;
        for (i, (label, rate)) in labels.iter().zip(&rates).enumerate() {
            let (cx, bw) = (cols.center(i), cols.bar_width());
            match rate {
                Some(r) => {
                    let h = r * plot;
                    write!(
                        out,
                        r#"<rect class="bar" data-label="{}" data-value="{}" x="{}" y="{}" width="{}" height="{}" fill="{ON_TIME}"><title>{}: {} on time</title></rect>"#,
                        esc(label),
                        N(r * 100.0),
                        N(cx - bw / 2.0),
                        N(base - h),
                        N(bw),
                        N(h),
                        esc(label),
                        percent(*r),
                    )?;
                    if rates_fit {
                        text(out, cx, base - h - 6.0, SMALL, "middle", INK, &percent(*r))?;
                    }
                }
                None if text_width("no calls", SMALL) <= cols.slot() - 2.0 => {
                    text(out, cx, base - 8.0, SMALL, "middle", MUTED, "no calls")?
                }
                None => {
                    // Too narrow to write across: up the empty column instead.
                    let (x, y) = (cx + SMALL * 0.35, base - 6.0);
                    write!(
                        out,
                        r#"<text x="{}" y="{}" transform="rotate(-90 {} {})" font-size="{SMALL}" fill="{MUTED}" text-anchor="start">no calls</text>"#,
                        N(x),
                        N(y),
                        N(x),
                        N(y),
                    )?;
                }
            }
        }
        x_labels(out, &labels, &cols, base)
    })
}

/// How the promises made on first calls ended, month by month, as stacked bars: delivered on
/// time (green, at the bottom), slipped to a later date (amber), dropped (red), with the total
/// on top and each part's count written in it when it is tall enough: sales ops see whether
/// what reps promise is what the company delivers. Months are drawn in the order given.
pub fn promises_per_month(months: &[MonthPromises]) -> String {
    const ID: &str = "chart-promises-per-month";
    const TITLE: &str = "Promises per month: on time, slipped, dropped";
    if months.is_empty() {
        return empty(ID, TITLE);
    }
    // Bottom to top: name, fill, and the colour of a count written on it.
    const OUTCOMES: [(&str, &str, &str); 3] = [("On time", ON_TIME, "#ffffff"), ("Slipped", SLIPPED, INK), ("Dropped", DROPPED, "#ffffff")];
    let counts = |m: &MonthPromises| [m.on_time, m.slipped, m.dropped];
    let total = |m: &MonthPromises| u64::from(m.on_time) + u64::from(m.slipped) + u64::from(m.dropped);
    let words: Vec<String> =
        months.iter().map(|m| format!("{}: {} on time, {} slipped, {} dropped", m.month, m.on_time, m.slipped, m.dropped)).collect();
    let table = Table {
        head: &["Month", "On time", "Slipped", "Dropped", "Total"],
        rows: months
            .iter()
            .map(|m| vec![m.month.clone(), m.on_time.to_string(), m.slipped.to_string(), m.dropped.to_string(), total(m).to_string()])
            .collect(),
    };
    let chart = Chart {
        id: ID,
        title: TITLE,
        desc: format!("Promises per month by how they ended: {}.", words.join("; ")),
        height: 300.0,
        table: Some(table),
    };
    figure(&chart, |out| {
        // The legend, on one line above the plot.
        let mut x = SIDE;
        for (name, fill, _) in OUTCOMES {
            write!(out, r#"<rect class="legend" x="{}" y="6" width="12" height="12" fill="{fill}"/>"#, N(x))?;
            text(out, x + 18.0, 17.0, FONT, "start", INK, name)?;
            x += 18.0 + text_width(name, FONT) + 20.0;
        }
        let top = TOP + 24.0;
        let cols = Columns { left: SIDE, width: W - 2.0 * SIDE, n: months.len() };
        let base = chart.height - BOTTOM;
        let scale = months.iter().map(total).max().unwrap_or(0).max(1) as f64;
        let per_promise = (base - top) / scale;
        let bw = cols.bar_width();
        for (i, m) in months.iter().enumerate() {
            let cx = cols.center(i);
            let mut y = base;
            for ((name, fill, ink), n) in OUTCOMES.into_iter().zip(counts(m)) {
                if n == 0 {
                    continue;
                }
                let h = f64::from(n) * per_promise;
                y -= h;
                write!(
                    out,
                    r#"<rect class="bar segment" data-label="{} {name}" data-value="{n}" x="{}" y="{}" width="{}" height="{}" fill="{fill}"><title>{}: {n} {}</title></rect>"#,
                    esc(&m.month),
                    N(cx - bw / 2.0),
                    N(y),
                    N(bw),
                    N(h),
                    esc(&m.month),
                    name.to_lowercase(),
                )?;
                if h >= SMALL + 4.0 && text_width(&n.to_string(), SMALL) <= bw - 2.0 {
                    text(out, cx, y + h / 2.0 + SMALL * 0.35, SMALL, "middle", ink, &n.to_string())?;
                }
            }
            let sum = total(m).to_string();
            if text_width(&sum, SMALL) <= cols.slot() - 2.0 {
                text(out, cx, y - 6.0, SMALL, "middle", INK, &sum)?;
            }
        }
        baseline(out, SIDE, W - SIDE, base)?;
        let labels: Vec<String> = months.iter().map(|m| m.month.clone()).collect();
        x_labels(out, &labels, &cols, base)
    })
}

/// The kinds of gap the recaps found most often (an uncovered must-have, a late delivery, an
/// undated commitment…), as horizontal bars, most frequent first: sales ops see which mistakes
/// between proposal and order keep coming back, and what to coach. The 10 most frequent are
/// drawn; the table lists every kind.
pub fn gap_kinds(rows: &[GapCount]) -> String {
    const ID: &str = "chart-gap-kinds";
    const TITLE: &str = "Gaps found in recaps, by kind";
    if rows.is_empty() {
        return empty(ID, TITLE);
    }
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.label.cmp(&b.label)));
    let shown = &rows[..rows.len().min(MAX_GAP_KINDS)];
    let more = rows.len() - shown.len();
    let mut words: Vec<String> = shown.iter().map(|g| format!("{} {}", g.label, g.count)).collect();
    if more > 0 {
        words.push(format!("and {} not shown", plural(more as u64, "more kind", "more kinds")));
    }
    let bars: Vec<HBar> =
        shown.iter().map(|g| HBar { label: g.label.clone(), value: f64::from(g.count), text: g.count.to_string() }).collect();
    let table = Table { head: &["Gap", "Times found"], rows: rows.iter().map(|g| vec![g.label.clone(), g.count.to_string()]).collect() };
    let chart = Chart {
        id: ID,
        title: TITLE,
        desc: format!("Gaps found in recaps by kind, most frequent first: {}.", words.join(", ")),
        height: hbars_height(bars.len(), more),
        table: Some(table),
    };
    figure(&chart, |out| hbars(out, &bars, more, "kinds"))
}

/// What every chart has around its drawing.
struct Chart<'a> {
    /// Prefix of the element ids, one per kind of chart.
    id: &'a str,
    title: &'a str,
    /// The numbers in words (unescaped).
    desc: String,
    /// Height of the `viewBox`.
    height: f64,
    table: Option<Table>,
}

/// The chart's numbers as a table; cells unescaped, the first one of a row names it.
struct Table {
    head: &'static [&'static str],
    rows: Vec<Vec<String>>,
}

/// The `<figure>`: the SVG with its title and description and what `draw` writes, the caption,
/// and the table.
fn figure(chart: &Chart<'_>, draw: impl FnOnce(&mut String) -> fmt::Result) -> String {
    let mut out = String::with_capacity(8 * 1024);
    // Writing into a String cannot fail.
    let _ = write_figure(&mut out, chart, draw);
    out
}

fn write_figure(out: &mut String, chart: &Chart<'_>, draw: impl FnOnce(&mut String) -> fmt::Result) -> fmt::Result {
    let Chart { id, title, .. } = chart;
    write!(
        out,
        r#"<figure class="chart"><svg role="img" aria-labelledby="{id}-title" aria-describedby="{id}-desc" viewBox="0 0 {} {}" width="100%" preserveAspectRatio="xMidYMid meet" font-family="system-ui, sans-serif" style="display:block;max-width:800px;height:auto">"#,
        N(W),
        N(chart.height),
    )?;
    write!(out, r#"<title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#, esc(title), esc(&chart.desc))?;
    draw(out)?;
    write!(out, "</svg><figcaption>{}</figcaption>", esc(title))?;
    if let Some(table) = &chart.table {
        out.push_str("<details><summary>Numbers</summary><table><thead><tr>");
        for h in table.head {
            write!(out, r#"<th scope="col">{}</th>"#, esc(h))?;
        }
        out.push_str("</tr></thead><tbody>");
        for row in &table.rows {
            out.push_str("<tr>");
            for (i, cell) in row.iter().enumerate() {
                match i {
                    0 => write!(out, r#"<th scope="row">{}</th>"#, esc(cell))?,
                    _ => write!(out, "<td>{}</td>", esc(cell))?,
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></details>");
    }
    out.push_str("</figure>");
    Ok(())
}

/// A chart without data: its frame, saying so.
fn empty(id: &str, title: &str) -> String {
    let chart = Chart { id, title, desc: "No data yet.".to_string(), height: 120.0, table: None };
    figure(&chart, |out| text(out, W / 2.0, 66.0, 18.0, "middle", MUTED, "No data yet"))
}

/// Vertical bars side by side: `n` slots across `width`, from `left`.
struct Columns {
    left: f64,
    width: f64,
    n: usize,
}

impl Columns {
    fn slot(&self) -> f64 {
        self.width / self.n.max(1) as f64
    }

    fn center(&self, i: usize) -> f64 {
        self.left + self.slot() * (i as f64 + 0.5)
    }

    /// Two thirds of the slot, but no fatter than 72 when there are few bars.
    fn bar_width(&self) -> f64 {
        (self.slot() * 0.64).min(72.0)
    }
}

/// The labels under vertical bars: on one line when each fits its slot; else on two lines
/// ("Mon" over "7 Dec"); and when even those are too wide, every k-th one counted back from the
/// last (the newest), so that none overlap.
fn x_labels(out: &mut String, labels: &[String], cols: &Columns, base: f64) -> fmt::Result {
    let slot = cols.slot();
    let widest = labels.iter().map(|l| text_width(l, FONT)).fold(0.0, f64::max);
    if widest <= slot - 4.0 {
        for (i, label) in labels.iter().enumerate() {
            text(out, cols.center(i), base + 18.0, FONT, "middle", INK, label)?;
        }
        return Ok(());
    }
    let lines: Vec<(&str, &str)> = labels.iter().map(|l| two_lines(l)).collect();
    let widest = lines.iter().map(|(a, b)| text_width(a, FONT).max(text_width(b, FONT))).fold(0.0, f64::max);
    let every = ((widest + 4.0) / slot).ceil().max(1.0) as usize;
    let last = labels.len().saturating_sub(1);
    for (i, (first, second)) in lines.iter().enumerate() {
        if !(last - i).is_multiple_of(every) {
            continue;
        }
        let x = N(cols.center(i));
        write!(
            out,
            r#"<text x="{x}" y="{}" font-size="{FONT}" fill="{INK}" text-anchor="middle"><tspan x="{x}">{}</tspan><tspan x="{x}" dy="17">{}</tspan></text>"#,
            N(base + 18.0),
            esc(first),
            esc(second),
        )?;
    }
    Ok(())
}

/// A label cut at the space that makes its longer line shortest (the first such space on a
/// tie): "Mon 7 Dec" → ("Mon", "7 Dec"), "Dec 2026" → ("Dec", "2026").
fn two_lines(label: &str) -> (&str, &str) {
    let chars = label.chars().count();
    label
        .char_indices()
        .enumerate()
        .filter(|(_, (_, c))| *c == ' ')
        .min_by_key(|(n, _)| (*n).max(chars - n - 1))
        .map_or((label, ""), |(_, (at, _))| (&label[..at], &label[at + 1..]))
}

/// One row of a horizontal bar chart.
struct HBar {
    label: String,
    value: f64,
    /// Written after the bar.
    text: String,
}

fn hbars_height(rows: usize, more: usize) -> f64 {
    let note = if more > 0 { 24.0 } else { 0.0 };
    8.0 + rows as f64 * ROW + note + 4.0
}

/// Horizontal bars, one row each: the label on its own line (room for long names on a phone),
/// then the bar and its value. The longest bar leaves room for the widest value text. `more`
/// rows not drawn are mentioned at the bottom.
fn hbars(out: &mut String, rows: &[HBar], more: usize, what: &str) -> fmt::Result {
    let widest = rows.iter().map(|r| text_width(&r.text, FONT)).fold(0.0, f64::max);
    let longest = (W - 2.0 * SIDE - widest - 8.0).max(200.0);
    let max = rows.iter().map(|r| r.value).fold(0.0, f64::max);
    let scale = if max > 0.0 { max } else { 1.0 };
    for (i, row) in rows.iter().enumerate() {
        let y = 8.0 + i as f64 * ROW;
        let label = cut(&row.label);
        text(out, SIDE, y + 14.0, FONT, "start", INK, &label)?;
        let w = row.value.max(0.0) / scale * longest;
        write!(
            out,
            r#"<rect class="bar" data-label="{}" data-value="{}" x="{}" y="{}" width="{}" height="{}" fill="{BAR}"><title>{}: {}</title></rect>"#,
            esc(&row.label),
            N(row.value),
            N(SIDE),
            N(y + 20.0),
            N(w),
            N(BAR_H),
            esc(&row.label),
            esc(&row.text),
        )?;
        text(out, SIDE + w + 6.0, y + 20.0 + BAR_H / 2.0 + FONT * 0.35, FONT, "start", INK, &row.text)?;
    }
    if more > 0 {
        let y = 8.0 + rows.len() as f64 * ROW + 14.0;
        text(out, SIDE, y, FONT, "start", MUTED, &format!("{more} more {what} not shown; the table lists them all."))?;
    }
    Ok(())
}

/// A label no longer than [`MAX_LABEL_CHARS`], cut with an ellipsis.
fn cut(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL_CHARS {
        return label.to_string();
    }
    let mut short: String = label.chars().take(MAX_LABEL_CHARS - 1).collect();
    short.push('…');
    short
}

/// One line of text; `content` is escaped here.
fn text(out: &mut String, x: f64, y: f64, size: f64, anchor: &str, fill: &str, content: &str) -> fmt::Result {
    write!(out, r#"<text x="{}" y="{}" font-size="{}" fill="{fill}" text-anchor="{anchor}">{}</text>"#, N(x), N(y), N(size), esc(content))
}

/// The axis under vertical bars.
fn baseline(out: &mut String, x1: f64, x2: f64, y: f64) -> fmt::Result {
    write!(out, r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{AXIS}" stroke-width="1"/>"#, N(x1), N(y), N(x2), N(y))
}

/// How wide `s` may be drawn at `size`, estimated on the generous side.
fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * GLYPH
}

/// Text from data, made safe as HTML and XML element content and as a quoted attribute value.
/// Control characters, which XML does not allow, become spaces.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A coordinate or length for an attribute: at most one decimal, and 0 for anything that is
/// not a finite number.
struct N(f64);

impl fmt::Display for N {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.0.is_finite() { (self.0 * 10.0).round() / 10.0 } else { 0.0 };
        if v == 0.0 {
            f.write_str("0")
        } else if v.fract() == 0.0 {
            write!(f, "{v:.0}")
        } else {
            write!(f, "{v:.1}")
        }
    }
}

/// Hours as data may hold them: not a number or below zero counts as 0.
fn hours(h: f64) -> f64 {
    if h.is_finite() && h > 0.0 { h } else { 0.0 }
}

/// "6.5 h" below 48 hours, "2.1 days" from there on.
fn duration(hours: f64) -> String {
    if hours >= 48.0 { format!("{:.1} days", hours / 24.0) } else { format!("{hours:.1} h") }
}

/// A share from 0 to 1 as a whole percentage: "83 %".
fn percent(share: f64) -> String {
    format!("{} %", (share.clamp(0.0, 1.0) * 100.0).round())
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<script>alert(1)</script> & Co";
    const HOSTILE_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co";

    fn rep(name: &str, median_hours: f64, calls: u32) -> RepMedian {
        RepMedian { rep: name.to_string(), median_hours, calls }
    }

    fn week(date: &str, on_time: u32, late: u32) -> WeekOnTime {
        WeekOnTime { week_start: date.parse().unwrap(), on_time, late }
    }

    fn month(name: &str, on_time: u32, slipped: u32, dropped: u32) -> MonthPromises {
        MonthPromises { month: name.to_string(), on_time, slipped, dropped }
    }

    fn gap(label: &str, count: u32) -> GapCount {
        GapCount { label: label.to_string(), count }
    }

    /// One chart of each kind, with data.
    fn every_chart(name: &str) -> Vec<String> {
        vec![
            order_to_first_call(&[1.0, 5.0, 30.0, 200.0]),
            median_per_rep(&[rep(name, 6.5, 12), rep("Ana Lima", 50.4, 3)]),
            on_time_per_week(&[week("2026-12-07", 5, 1), week("2026-12-14", 0, 0)]),
            promises_per_month(&[month(name, 4, 1, 1), month("Jan 2027", 2, 0, 3)]),
            gap_kinds(&[gap(name, 3), gap("Uncovered must-have", 7)]),
        ]
    }

    fn every_empty_chart() -> Vec<String> {
        vec![order_to_first_call(&[]), median_per_rep(&[]), on_time_per_week(&[]), promises_per_month(&[]), gap_kinds(&[])]
    }

    /// The value of attribute `name` in the tag that starts at the beginning of `tag`.
    fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
        let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(&tag[start..start + tag[start..].find('"')?])
    }

    /// The bars drawn: (data-label, height or, for horizontal bars, width).
    fn bars(html: &str, size: &str) -> Vec<(String, f64)> {
        html.match_indices("<rect class=\"bar")
            .map(|(at, _)| &html[at..])
            .map(|tag| (attr(tag, "data-label").unwrap().to_string(), attr(tag, size).unwrap().parse().unwrap()))
            .collect()
    }

    fn bar(html: &str, label: &str) -> f64 {
        bars(html, "height").into_iter().find(|(l, _)| l == label).unwrap_or_else(|| panic!("no bar {label} in {html}")).1
    }

    #[test]
    fn text_from_data_is_escaped_everywhere() {
        let charts = [
            median_per_rep(&[rep(HOSTILE, 6.5, 12)]),
            promises_per_month(&[month(HOSTILE, 4, 1, 1)]),
            gap_kinds(&[gap(HOSTILE, 3)]),
            // Long enough to be cut and drawn on two lines.
            median_per_rep(&[rep(&HOSTILE.repeat(4), 6.5, 12)]),
            promises_per_month(&vec![month(HOSTILE, 4, 1, 1); 12]),
        ];
        for html in charts {
            assert!(html.contains(HOSTILE_ESCAPED), "{html}");
            assert!(!html.contains("<script"), "{html}");
            assert!(!html.contains(HOSTILE), "{html}");
        }
        assert_eq!(esc(r#"a "b" 'c'"#), "a &quot;b&quot; &#39;c&#39;");
    }

    #[test]
    fn nothing_the_content_security_policy_forbids() {
        for html in every_chart(HOSTILE).into_iter().chain(every_empty_chart()) {
            let lower = html.to_lowercase();
            for banned in
                ["href", "<image", "<use", "<foreignobject", "<script", "javascript:", "url(", "@import", "<style", "http:", "https:"]
            {
                assert!(!lower.contains(banned), "{banned} in {html}");
            }
            // No event handler attributes (onload=, onclick=…).
            for (at, _) in lower.match_indices(" on") {
                let rest = &lower[at + 3..];
                let after_name = rest.trim_start_matches(|c: char| c.is_ascii_alphabetic());
                assert!(!after_name.starts_with('='), "an event handler in {html}");
            }
        }
    }

    #[test]
    fn every_chart_is_a_figure_with_an_accessible_svg_caption_and_table() {
        let ids = ["chart-order-to-call", "chart-median-per-rep", "chart-on-time-per-week", "chart-promises-per-month", "chart-gap-kinds"];
        for (html, id) in every_chart("Ana Lima").iter().zip(ids) {
            assert!(html.starts_with(r#"<figure class="chart"><svg role="img""#), "{html}");
            assert!(html.ends_with("</figure>"), "{html}");
            assert!(html.contains(&format!(r#"aria-labelledby="{id}-title""#)), "{html}");
            assert!(html.contains(&format!(r#"<title id="{id}-title">"#)), "{html}");
            assert!(html.contains(&format!(r#"<desc id="{id}-desc">"#)), "{html}");
            assert!(
                html.contains(r#"width="100%""#) && html.contains(r#"viewBox="0 0 640 "#) && html.contains("preserveAspectRatio="),
                "{html}"
            );
            let (svg, rest) = html.split_once("</svg>").unwrap();
            assert!(svg.contains("<desc"));
            assert!(rest.starts_with("<figcaption>"), "{rest}");
            assert!(rest.contains("<details><summary>Numbers</summary><table>"), "{rest}");
        }
    }

    #[test]
    fn text_is_big_enough_to_read_on_a_phone() {
        let many_weeks: Vec<WeekOnTime> = (0..52)
            .map(|i| WeekOnTime {
                week_start: NaiveDate::from_ymd_opt(2026, 1, 5).unwrap() + chrono::Days::new(7 * i),
                on_time: 3,
                late: 1,
            })
            .collect();
        for html in every_chart("Ana Lima").into_iter().chain([on_time_per_week(&many_weeks)]) {
            for (at, _) in html.match_indices(" font-size=\"") {
                let size: f64 = attr(&html[at..], "font-size").unwrap().parse().unwrap();
                assert!(size >= 13.0, "font-size {size} in {html}");
            }
        }
    }

    #[test]
    fn histogram_buckets_include_their_lower_bound() {
        let html = order_to_first_call(&[3.9, 4.0, 130.0]);
        assert!(html.contains(r#"<tr><th scope="row">&lt; 4 h</th><td>1</td></tr>"#), "{html}");
        assert!(html.contains(r#"<tr><th scope="row">4–8 h</th><td>1</td></tr>"#), "{html}");
        assert!(html.contains(r#"<tr><th scope="row">&gt; 5 days</th><td>1</td></tr>"#), "{html}");
        assert!(html.contains(r#"<tr><th scope="row">3–5 days</th><td>0</td></tr>"#), "{html}");
        assert!(html.contains("for 3 calls: &lt; 4 h: 1, 4–8 h: 1, 8–24 h: 0"), "the description says it too: {html}");
    }

    #[test]
    fn bars_are_as_tall_as_their_count() {
        let html = order_to_first_call(&[1.0, 2.0, 150.0, 160.0, 170.0, 180.0, 10.0]);
        let short = bar(&html, "&lt; 4 h");
        assert!(short > 0.0);
        assert!((bar(&html, "&gt; 5 days") - 2.0 * short).abs() < 0.2, "{html}");
        assert!((bar(&html, "8–24 h") - short / 2.0).abs() < 0.2, "{html}");
        assert_eq!(bar(&html, "4–8 h"), 0.0);

        let html = on_time_per_week(&[week("2026-12-07", 2, 2), week("2026-12-14", 4, 0)]);
        assert!((bar(&html, "Mon 14 Dec") - 2.0 * bar(&html, "Mon 7 Dec")).abs() < 0.2, "{html}");

        let html = gap_kinds(&[gap("Late delivery", 5), gap("Uncovered must-have", 10)]);
        let widths = bars(&html, "width");
        assert_eq!(widths[0].0, "Uncovered must-have", "most frequent first");
        assert!((widths[0].1 - 2.0 * widths[1].1).abs() < 0.2, "{html}");
    }

    #[test]
    fn a_week_reads_as_its_on_time_rate() {
        let html = on_time_per_week(&[week("2026-12-14", 0, 0), week("2026-12-07", 5, 1)]);
        assert!(html.contains(">83 %</text>"), "{html}");
        assert!(html.contains("Mon 7 Dec 83 % (5 of 6 on time), Mon 14 Dec no calls."), "oldest first: {html}");
        assert!(html.contains(">no calls</text>"), "{html}");
        assert_eq!(bars(&html, "height").len(), 1, "no bar for the week without calls");
        for gridline in [">0 %</text>", ">50 %</text>", ">100 %</text>"] {
            assert!(html.contains(gridline), "{gridline}: {html}");
        }
    }

    #[test]
    fn reps_slowest_first_at_most_fifteen() {
        let reps: Vec<RepMedian> = (1..=20).map(|i| rep(&format!("Rep {i}"), f64::from(i), 2)).collect();
        let html = median_per_rep(&reps);
        let drawn = bars(&html, "width");
        assert_eq!(drawn.len(), 15);
        assert_eq!(drawn[0].0, "Rep 20");
        assert_eq!(drawn[14].0, "Rep 6");
        assert!(html.contains("5 more reps not shown"), "{html}");
        assert!(html.contains(r#"<th scope="row">Rep 1</th>"#), "the table lists every rep: {html}");
    }

    #[test]
    fn rep_medians_in_hours_then_days() {
        let html = median_per_rep(&[rep("Ana Lima", 6.5, 12), rep("Bo Chen", 50.4, 3), rep("Cy Diaz", 1.0, 1)]);
        assert!(html.contains(">6.5 h (12 calls)</text>"), "{html}");
        assert!(html.contains(">2.1 days (3 calls)</text>"), "{html}");
        assert!(html.contains(">1.0 h (1 call)</text>"), "{html}");
        assert!(html.contains("slowest first: Bo Chen 2.1 days (3 calls), Ana Lima 6.5 h (12 calls), Cy Diaz 1.0 h (1 call)."), "{html}");
    }

    #[test]
    fn promises_stack_with_a_legend() {
        let html = promises_per_month(&[month("Dec 2026", 8, 2, 0), month("Jan 2027", 3, 1, 1)]);
        for name in [">On time</text>", ">Slipped</text>", ">Dropped</text>"] {
            assert!(html.contains(name), "{name}: {html}");
        }
        assert!((bar(&html, "Dec 2026 On time") - 4.0 * bar(&html, "Dec 2026 Slipped")).abs() < 0.2, "{html}");
        assert!(!bars(&html, "height").iter().any(|(l, _)| l == "Dec 2026 Dropped"), "no segment for zero");
        assert!(html.contains(">8</text>"), "the count inside a tall segment: {html}");
        assert!(html.contains(r#"<tr><th scope="row">Dec 2026</th><td>8</td><td>2</td><td>0</td><td>10</td></tr>"#), "{html}");
    }

    #[test]
    fn gap_kinds_most_frequent_first_at_most_ten() {
        let gaps: Vec<GapCount> = (1..=12).map(|i| gap(&format!("Kind {i}"), i)).collect();
        let html = gap_kinds(&gaps);
        let drawn = bars(&html, "width");
        assert_eq!(drawn.len(), 10);
        assert_eq!(drawn[0].0, "Kind 12");
        assert!(html.contains("most frequent first: Kind 12 12, Kind 11 11"), "{html}");
    }

    #[test]
    fn without_data_each_chart_says_so() {
        for html in every_empty_chart() {
            assert!(html.contains(">No data yet</text>"), "{html}");
            assert!(html.contains("<figcaption>"), "{html}");
            assert!(!html.contains("<table"), "{html}");
        }
        assert!(order_to_first_call(&[f64::NAN]).contains("No data yet"));
    }

    #[test]
    fn never_nan_or_infinite() {
        let charts = [
            order_to_first_call(&[f64::NAN, f64::INFINITY, -3.0, f64::NEG_INFINITY]),
            median_per_rep(&[rep("A", f64::NAN, 0), rep("B", f64::INFINITY, 1), rep("C", -2.0, 1), rep("D", 0.0, 0)]),
            on_time_per_week(&[week("2026-12-07", 0, 0)]),
            promises_per_month(&[month("Dec 2026", 0, 0, 0)]),
            gap_kinds(&[gap("None", 0)]),
        ];
        for html in charts {
            let lower = html.to_lowercase();
            assert!(!lower.contains("nan") && !lower.contains("inf"), "{html}");
        }
    }

    #[test]
    fn long_labels_go_on_two_lines() {
        assert_eq!(two_lines("Mon 7 Dec"), ("Mon", "7 Dec"));
        assert_eq!(two_lines("Dec 2026"), ("Dec", "2026"));
        assert_eq!(two_lines("December"), ("December", ""));
        let months: Vec<MonthPromises> = (1..=12).map(|i| month(&format!("M{i:02} 2026"), i, 0, 0)).collect();
        let html = promises_per_month(&months);
        assert!(html.contains(r#">M12</tspan><tspan x="#), "{html}");
    }
}
