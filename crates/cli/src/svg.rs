//! A hand-made SVG chart of trust and health over time, with the bands shaded.

use std::fmt::Write;

use rapport_core::Timestamp;
use rapport_health::{HealthModel, Scores};

const W: f64 = 900.0;
const H: f64 = 420.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The chart for `account`: one line for trust, one for health, the green/yellow/red bands
/// shaded behind them, and grey dots where a score is grey (insufficient evidence).
pub(crate) fn chart(account: &str, line: &[(Timestamp, Scores)], model: &HealthModel) -> String {
    let (t0, t1) = match (line.first(), line.last()) {
        (Some(a), Some(b)) => (a.0, b.0),
        _ => (Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH),
    };
    let plot = Plot { t0, span: t1.days_since(t0).max(1.0), w: W - LEFT - RIGHT, h: H - TOP - BOTTOM };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="28" font-size="16" font-weight="bold">Trust and health: {}</text>"#,
        esc(account)
    );
    plot.bands(&mut s, model);
    plot.grid(&mut s);
    plot.time_axis(&mut s, line.len());
    plot.series(&mut s, line);
    plot.legend(&mut s);
    s.push_str("</svg>\n");
    s
}

/// The plot area: its size in pixels, and the time it spans from `t0`, in days.
struct Plot {
    t0: Timestamp,
    span: f64,
    w: f64,
    h: f64,
}

impl Plot {
    fn x(&self, t: Timestamp) -> f64 {
        LEFT + self.w * t.days_since(self.t0) / self.span
    }

    fn y(&self, v: f64) -> f64 {
        TOP + self.h * (1.0 - v.clamp(0.0, 100.0) / 100.0)
    }

    /// The green, yellow and red bands, shaded and named at the right.
    fn bands(&self, s: &mut String, model: &HealthModel) {
        let b = &model.bands;
        for (lo, hi, color, label) in [
            (b.green_from, 100.0, "#d9f2d9", "green"),
            (b.yellow_from, b.green_from, "#fff3c4", "yellow"),
            (0.0, b.yellow_from, "#f9d6d5", "red"),
        ] {
            let _ = writeln!(
                s,
                r#"<rect x="{LEFT}" y="{:.1}" width="{}" height="{:.1}" fill="{color}"><title>{label} band</title></rect>"#,
                self.y(hi),
                self.w,
                self.y(lo) - self.y(hi)
            );
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" fill="#666">{label}</text>"##,
                LEFT + self.w + 8.0,
                (self.y(hi) + self.y(lo)) / 2.0 + 4.0
            );
        }
    }

    /// Lines at every quarter of the score range, labelled at the left.
    fn grid(&self, s: &mut String) {
        for v in [0.0, 25.0, 50.0, 75.0, 100.0] {
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#999" stroke-width="0.5"/>"##,
                LEFT + self.w,
                self.y(v),
                self.y(v)
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{v:.0}</text>"#,
                LEFT - 6.0,
                self.y(v) + 4.0
            );
        }
    }

    /// Up to six dates along the bottom, for a line of `points` points.
    fn time_axis(&self, s: &mut String, points: usize) {
        let ticks = 6.min(points.max(1));
        for k in 0..ticks {
            let t = self.t0.add_days(self.span * k as f64 / (ticks.max(2) - 1) as f64);
            let date = t.to_string();
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                self.x(t),
                TOP + self.h + 18.0,
                esc(date.get(..10).unwrap_or(&date))
            );
        }
    }

    /// Trust and health as lines with a dot per point, grey where the score is grey.
    fn series(&self, s: &mut String, line: &[(Timestamp, Scores)]) {
        type Pick = fn(&Scores) -> (f64, rapport_health::Band);
        let trust: Pick = |s| (s.trust.score, s.trust.band);
        let health: Pick = |s| (s.health.score, s.health.band);
        for (name, color, pick) in [("trust", "#1f5fbf", trust), ("health", "#222222", health)] {
            let points: Vec<String> =
                line.iter().map(|(t, sc)| format!("{:.1},{:.1}", self.x(*t), self.y(pick(sc).0))).collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"><title>{name}</title></polyline>"#,
                points.join(" ")
            );
            for (t, sc) in line {
                let (v, band) = pick(sc);
                let fill = if band == rapport_health::Band::Grey { "#aaaaaa" } else { color };
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{fill}"><title>{name} {v:.1} ({}) at {t}</title></circle>"#,
                    self.x(*t),
                    self.y(v),
                    band.name()
                );
            }
        }
    }

    /// What the two lines and the grey dots mean, below the plot.
    fn legend(&self, s: &mut String) {
        let ly = TOP + self.h + 42.0;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{ly}" y2="{ly}" stroke="#1f5fbf" stroke-width="2"/><text x="{:.1}" y="{:.1}">trust</text>"##,
            LEFT + 24.0,
            LEFT + 30.0,
            ly + 4.0
        );
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" x2="{:.1}" y1="{ly}" y2="{ly}" stroke="#222222" stroke-width="2"/><text x="{:.1}" y="{:.1}">health</text>"##,
            LEFT + 90.0,
            LEFT + 114.0,
            LEFT + 120.0,
            ly + 4.0
        );
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{ly}" r="3" fill="#aaaaaa"/><text x="{:.1}" y="{:.1}">grey: insufficient evidence</text>"##,
            LEFT + 190.0,
            LEFT + 198.0,
            ly + 4.0
        );
    }
}
