//! Small charts of the last five minutes, drawn as inline SVG on the server (no script): a
//! service's or an endpoint's request rate, error rate and p50/p99 latency, from the calls the
//! platform made for its callers ([`crate::recent`]). Each chart says in words what it shows
//! (its `aria-label` and caption), for readers who do not see it.

use std::fmt::Write;

use super::html::escape;
use crate::recent::Point;

const WIDTH: f64 = 240.0;
const HEIGHT: f64 = 56.0;

/// One line of a chart: its name, colour and values (`None` where there were no calls).
struct Line<'a> {
    name: &'a str,
    colour: &'a str,
    values: Vec<Option<f64>>,
}

/// The three charts of `points`: requests a second, errors in percent, latency in ms.
pub(crate) fn row(points: &[Point]) -> String {
    let rate = Line {
        name: "req/s",
        colour: "#2f6fde",
        values: points.iter().map(|p| Some(p.rate)).collect(),
    };
    let errors = Line {
        name: "errors %",
        colour: "#d0342c",
        values: points.iter().map(|p| p.errors.map(|e| e * 100.0)).collect(),
    };
    let p50 = Line {
        name: "p50 ms",
        colour: "#2a9d5b",
        values: points.iter().map(|p| p.p50.map(|s| s * 1000.0)).collect(),
    };
    let p99 = Line {
        name: "p99 ms",
        colour: "#b26a00",
        values: points.iter().map(|p| p.p99.map(|s| s * 1000.0)).collect(),
    };
    format!(
        "<div class=\"charts\">{}{}{}</div>",
        chart("Requests", &[rate]),
        chart("Errors", &[errors]),
        chart("Latency", &[p50, p99])
    )
}

fn chart(title: &str, lines: &[Line<'_>]) -> String {
    let max = lines
        .iter()
        .flat_map(|l| l.values.iter().flatten())
        .fold(0.0_f64, |m, v| m.max(*v));
    let top = if max > 0.0 { max } else { 1.0 };
    let mut words = Vec::new();
    for line in lines {
        let now = line.values.iter().rev().flatten().next();
        words.push(match now {
            Some(v) => format!("{} now {}", line.name, figure(*v)),
            None => format!("{} none now", line.name),
        });
    }
    let summary = format!(
        "{title} over the last 5 minutes: {}; peak {}",
        words.join(", "),
        figure(max)
    );
    let mut svg = format!(
        "<figure class=\"chart\"><svg role=\"img\" aria-label=\"{0}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\"><title>{0}</title>\
         <rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#fff\" stroke=\"#e3e6ea\"/>",
        escape(&summary)
    );
    for line in lines {
        let n = line.values.len().max(2) - 1;
        let mut segment = Vec::new();
        let mut segments = Vec::new();
        for (i, value) in line.values.iter().enumerate() {
            match value {
                Some(v) => {
                    let x = WIDTH * i as f64 / n as f64;
                    let y = HEIGHT - 3.0 - (HEIGHT - 6.0) * (v / top);
                    segment.push(format!("{x:.1},{y:.1}"));
                }
                None if !segment.is_empty() => segments.push(std::mem::take(&mut segment)),
                None => {}
            }
        }
        if !segment.is_empty() {
            segments.push(segment);
        }
        for points in segments {
            // A lone slot with calls is a dot: a line needs two.
            if let [point] = points.as_slice()
                && let Some((x, y)) = point.split_once(',')
            {
                let _ = write!(
                    svg,
                    "<circle cx=\"{x}\" cy=\"{y}\" r=\"2\" fill=\"{}\"/>",
                    line.colour
                );
                continue;
            }
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
                line.colour,
                points.join(" ")
            );
        }
    }
    let _ = write!(
        svg,
        "</svg><figcaption><strong>{}</strong> {}</figcaption></figure>",
        escape(title),
        escape(&words.join(" · "))
    );
    svg
}

/// A figure to three significant digits or so.
fn figure(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_say_what_they_show() {
        let mut points = vec![
            Point {
                rate: 0.0,
                errors: None,
                p50: None,
                p99: None,
            };
            60
        ];
        points[59] = Point {
            rate: 4.0,
            errors: Some(0.25),
            p50: Some(0.002),
            p99: Some(0.010),
        };
        let html = row(&points);
        assert!(html.contains("req/s now 4.00"), "{html}");
        assert!(html.contains("errors % now 25.0"), "{html}");
        assert!(html.contains("p99 ms now 10.0"), "{html}");
        assert_eq!(html.matches("<svg").count(), 3);
        assert!(!html.contains("NaN"), "{html}");
    }
}
