//! Charts as inline SVG (PROTOCOL §10): a line chart over months and a bar chart over named
//! groups, each with a `<title>`, every point or bar carrying the key it draws
//! (`data-key`) and its exact value (`data-value`). Coordinates are floating point:
//! they only place marks; the figures themselves stay exact in the attributes.

/// One mark: a point of a line or a bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    /// The month or group it draws.
    pub key: String,
    /// The exact value.
    pub value: String,
    /// What a person reads on hover.
    pub label: String,
    pub x: String,
    pub y: String,
    /// A bar's width and height (0 for a point).
    pub width: String,
    pub height: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    /// The field of each list item of the chart's source that the marks draw.
    pub field: String,
    /// The CSS class that colours it.
    pub class: &'static str,
    pub marks: Vec<Mark>,
    /// A line's `points` attribute (empty for bars).
    pub path: String,
}

/// A label on an axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub x: String,
    pub y: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// The element id of its `<title>`.
    pub id: String,
    /// The `<title>`: what the chart shows and over which keys.
    pub title: String,
    /// Where the drawn figures are in the API: the answer (`data-source`), the list in
    /// it (`data-list`) and the field of each item that is its key (`data-key-field`).
    pub source: Source,
    pub width: u32,
    pub height: u32,
    pub series: Vec<Series>,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    /// The keys drawn, in order.
    pub keys: Vec<String>,
}

impl Chart {
    /// The keys as a JSON array (`data-keys` on the `<svg>`): keys are free text, so no
    /// separator character could be trusted.
    pub fn keys_json(&self) -> String {
        serde_json::to_string(&self.keys).unwrap_or_else(|e| unreachable!("strings serialise: {e}"))
    }
}

/// Where a chart's figures are in the API.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    pub url: String,
    pub list: String,
    pub key_field: String,
}

/// A series to draw: its name, CSS class, the field it draws and a value per key.
pub struct Line {
    pub name: String,
    pub class: &'static str,
    pub field: String,
    pub values: Vec<Option<Value>>,
}

/// A value to draw: exact text and its magnitude for placing it.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub exact: String,
    pub magnitude: f64,
    pub label: String,
}

const WIDTH: u32 = 720;
const HEIGHT: u32 = 240;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;
/// Axis labels drawn at most, so long series stay legible.
const MAX_X_TICKS: usize = 12;

fn coord(x: f64) -> String {
    format!("{x:.1}")
}

struct Frame {
    keys: usize,
    max: f64,
}

impl Frame {
    fn new(keys: usize, series: &[Line]) -> Frame {
        let max = series
            .iter()
            .flat_map(|l| l.values.iter().flatten())
            .map(|v| v.magnitude)
            .fold(0.0_f64, f64::max);
        Frame {
            keys,
            max: if max > 0.0 { max } else { 1.0 },
        }
    }

    fn plot_width() -> f64 {
        f64::from(WIDTH) - LEFT - RIGHT
    }

    fn plot_height() -> f64 {
        f64::from(HEIGHT) - TOP - BOTTOM
    }

    /// The centre of slot `i` of `keys` slots.
    fn x(&self, i: usize) -> f64 {
        let slot = Self::plot_width() / self.keys.max(1) as f64;
        LEFT + slot * (i as f64 + 0.5)
    }

    fn slot(&self) -> f64 {
        Self::plot_width() / self.keys.max(1) as f64
    }

    fn y(&self, v: f64) -> f64 {
        TOP + Self::plot_height() * (1.0 - (v.max(0.0) / self.max))
    }

    fn ticks(&self, keys: &[String], y_label: impl Fn(f64) -> String) -> (Vec<Tick>, Vec<Tick>) {
        let every = keys.len().div_ceil(MAX_X_TICKS).max(1);
        let x_ticks = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| i % every == 0)
            .map(|(i, k)| Tick {
                x: coord(self.x(i)),
                y: coord(f64::from(HEIGHT) - BOTTOM + 16.0),
                text: k.clone(),
            })
            .collect();
        let y_ticks = [0.0, 0.5, 1.0]
            .iter()
            .map(|f| Tick {
                x: coord(LEFT - 6.0),
                y: coord(self.y(self.max * f) + 4.0),
                text: y_label(self.max * f),
            })
            .collect();
        (x_ticks, y_ticks)
    }
}

/// How a chart draws its values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A point per value, the points of a series joined.
    Lines,
    /// A bar per value, the series side by side in each key's slot.
    Bars,
}

impl Shape {
    /// Where series `s` of `groups` draws value `v` at key `i`: left (a point's centre),
    /// top, width, height.
    fn place(self, f: &Frame, groups: usize, s: usize, i: usize, v: f64) -> (f64, f64, f64, f64) {
        match self {
            Shape::Lines => (f.x(i), f.y(v), 0.0, 0.0),
            Shape::Bars => {
                let bar = f.slot() * 0.8 / groups.max(1) as f64;
                let top = f.y(v);
                let left = f.x(i) - f.slot() * 0.4 + bar * s as f64;
                (left, top, bar, f.y(0.0) - top)
            }
        }
    }
}

/// A chart of `series` over `keys`.
fn draw(
    shape: Shape,
    id: &str,
    title: String,
    source: Source,
    keys: Vec<String>,
    series: Vec<Line>,
    y_label: impl Fn(f64) -> String,
) -> Chart {
    let frame = Frame::new(keys.len(), &series);
    let groups = series.len();
    let (x_ticks, y_ticks) = frame.ticks(&keys, y_label);
    let series = series
        .into_iter()
        .enumerate()
        .map(|(s, line)| {
            let marks: Vec<Mark> = line
                .values
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let v = v?;
                    let (x, y, width, height) = shape.place(&frame, groups, s, i, v.magnitude);
                    Some(Mark {
                        key: keys[i].clone(),
                        label: format!("{}: {}", keys[i], v.label),
                        value: v.exact,
                        x: coord(x),
                        y: coord(y),
                        width: coord(width),
                        height: coord(height),
                    })
                })
                .collect();
            let path = if shape == Shape::Lines {
                let points: Vec<String> =
                    marks.iter().map(|m| format!("{},{}", m.x, m.y)).collect();
                points.join(" ")
            } else {
                String::new()
            };
            Series {
                name: line.name,
                field: line.field,
                class: line.class,
                marks,
                path,
            }
        })
        .collect();
    Chart {
        id: id.to_string(),
        title,
        source,
        width: WIDTH,
        height: HEIGHT,
        series,
        x_ticks,
        y_ticks,
        keys,
    }
}

/// Lines over `keys` (months), one per series; a missing value leaves a gap in the marks.
pub fn lines(
    id: &str,
    title: String,
    source: Source,
    keys: Vec<String>,
    series: Vec<Line>,
    y_label: impl Fn(f64) -> String,
) -> Chart {
    draw(Shape::Lines, id, title, source, keys, series, y_label)
}

/// Bars over `keys` (provinces, facilities), the series side by side in each slot.
pub fn bars(
    id: &str,
    title: String,
    source: Source,
    keys: Vec<String>,
    series: Vec<Line>,
    y_label: impl Fn(f64) -> String,
) -> Chart {
    draw(Shape::Bars, id, title, source, keys, series, y_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: u64) -> Option<Value> {
        Some(Value {
            exact: x.to_string(),
            magnitude: x as f64,
            label: x.to_string(),
        })
    }

    #[test]
    fn marks_carry_their_keys_and_gaps_stay_gaps() {
        let keys: Vec<String> = ["2025-01", "2025-02", "2025-03"].map(String::from).to_vec();
        let line = |values| Line {
            name: "a".into(),
            class: "s1",
            field: "f".into(),
            values,
        };
        let source = Source {
            url: "/v1/x".into(),
            list: "l".into(),
            key_field: "k".into(),
        };
        let c = lines(
            "c",
            "t".into(),
            source.clone(),
            keys.clone(),
            vec![line(vec![v(1), None, v(4)])],
            |y| format!("{y}"),
        );
        let marks = &c.series[0].marks;
        assert_eq!(
            marks.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
            ["2025-01", "2025-03"]
        );
        assert_eq!(marks[1].value, "4");
        // The largest value reaches the top of the plot.
        assert_eq!(marks[1].y, coord(TOP));
        let b = bars(
            "b",
            "t".into(),
            source,
            keys,
            vec![line(vec![v(0), v(2), v(4)])],
            |y| format!("{y}"),
        );
        assert_eq!(b.series[0].marks[0].height, "0.0");
        assert_eq!(b.keys.len(), 3);
    }
}
