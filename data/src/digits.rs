//! The UCI / scikit-learn 8x8 handwritten digits (`digits.csv.gz`).
//!
//! The file is a CSV without header: 1797 lines of 65 integers, 64 pixels (row by row,
//! values 0..=16) then the label 0..=9. Inputs are `[B, 64]`, pixels divided by 16.
//!
//! Split (deterministic, no shuffling): the **last 360 rows are the eval (test) set**, the
//! first 1437 rows the train set. 360 is 20% of 1797 rounded, the usual `test_size=0.2`.

use std::path::{Path, PathBuf};

use crate::batch::{check_indices, Batch};
use crate::dataset::{Dataset, Task};
use crate::error::{DataError, Result, Split};
use crate::read::{find_raw_or_gz, read_maybe_gz};

/// File name (without `.gz`) looked up in the dataset folder.
pub const FILE: &str = "digits.csv";
/// Pixels per image (8x8).
pub const PIXELS: usize = 64;
/// Largest pixel value.
pub const MAX_PIXEL: u8 = 16;
/// Number of classes.
pub const CLASSES: usize = 10;
/// Rows at the end of the file that form the eval (test) split.
pub const TEST_ROWS: usize = 360;

/// The digits dataset in memory: pixels as bytes (0..=16) and labels, in file order.
pub struct Digits {
    path: PathBuf,
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

impl Digits {
    /// Open `digits.csv` or `digits.csv.gz` in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = find_raw_or_gz(dir, FILE, "")?;
        let bytes = read_maybe_gz(&path)?;
        Self::parse(&path, &bytes)
    }

    /// Parse CSV bytes; `path` is used in error messages only.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        let err = |line: usize, column: usize, reason: String| DataError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| DataError::NotUtf8 {
            path: path.to_path_buf(),
            offset: e.valid_up_to(),
        })?;
        let mut pixels = Vec::with_capacity(1797 * PIXELS);
        let mut labels = Vec::with_capacity(1797);
        for (l, line) in text.lines().enumerate() {
            let line_no = l + 1;
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let fields = line.split(',').count();
            if fields != PIXELS + 1 {
                return Err(err(
                    line_no,
                    fields.min(PIXELS + 1),
                    format!("expected {} fields, found {fields}", PIXELS + 1),
                ));
            }
            for (c, field) in line.split(',').enumerate() {
                let column = c + 1;
                let (max, what) = if column <= PIXELS {
                    (MAX_PIXEL, "pixel")
                } else {
                    (CLASSES as u8 - 1, "label")
                };
                let value = match field.trim().parse::<u8>() {
                    Ok(v) if v <= max => v,
                    _ => {
                        return Err(err(
                            line_no,
                            column,
                            format!("{what} {field:?} is not an integer in 0..={max}"),
                        ))
                    }
                };
                if column <= PIXELS {
                    pixels.push(value);
                } else {
                    labels.push(value);
                }
            }
        }
        if labels.len() <= TEST_ROWS {
            return Err(err(
                text.lines().count().max(1),
                1,
                format!(
                    "{} rows: need more than the {TEST_ROWS} rows of the test split",
                    labels.len()
                ),
            ));
        }
        Ok(Digits {
            path: path.to_path_buf(),
            pixels,
            labels,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Labels of a split, in file order.
    pub fn labels(&self, split: Split) -> &[u8] {
        let cut = self.labels.len() - TEST_ROWS;
        match split {
            Split::Train => &self.labels[..cut],
            Split::Eval => &self.labels[cut..],
        }
    }

    fn gather(&self, split: Split, indices: &[usize]) -> Result<Batch> {
        let len = self.labels(split).len();
        check_indices(self.name(), split, indices, len)?;
        let offset = match split {
            Split::Train => 0,
            Split::Eval => self.labels.len() - TEST_ROWS,
        };
        let scale = 1.0 / f32::from(MAX_PIXEL);
        let mut inputs = Vec::with_capacity(indices.len() * PIXELS);
        let mut targets = Vec::with_capacity(indices.len());
        for &i in indices {
            let row = offset + i;
            inputs.extend(
                self.pixels[row * PIXELS..(row + 1) * PIXELS]
                    .iter()
                    .map(|&p| f32::from(p) * scale),
            );
            targets.push(u32::from(self.labels[row]));
        }
        let b = indices.len();
        Batch::from_vecs(inputs, &[b, PIXELS], targets, &[b])
    }
}

/// Shows the file and example counts, not the pixels.
impl std::fmt::Debug for Digits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digits")
            .field("path", &self.path)
            .field("train_len", &self.train_len())
            .field("eval_len", &self.eval_len())
            .finish_non_exhaustive()
    }
}

impl Dataset for Digits {
    fn name(&self) -> &str {
        "digits"
    }

    fn task(&self) -> Task {
        Task::Classification { classes: CLASSES }
    }

    fn sample_shape(&self) -> Vec<usize> {
        vec![PIXELS]
    }

    fn train_len(&self) -> usize {
        self.labels.len() - TEST_ROWS
    }

    fn eval_len(&self) -> usize {
        TEST_ROWS
    }

    fn train_batch(&self, indices: &[usize]) -> Result<Batch> {
        self.gather(Split::Train, indices)
    }

    fn eval_batch(&self, indices: &[usize]) -> Result<Batch> {
        self.gather(Split::Eval, indices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: u8) -> String {
        let mut v: Vec<String> = (0..PIXELS).map(|p| (p % 17).to_string()).collect();
        v.push(label.to_string());
        v.join(",")
    }

    #[test]
    fn parse_errors_name_line_and_column() {
        let mut text = (0..400).map(|i| row((i % 10) as u8)).collect::<Vec<_>>();
        text[6] = text[6].replacen("0,", "x,", 1);
        let err = Digits::parse(Path::new("d.csv"), text.join("\n").as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Parse {
                    line: 7,
                    column: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().starts_with("d.csv:7:1:"), "{err}");
    }

    #[test]
    fn rejects_out_of_range_pixel_label_and_short_row() {
        let mut text = (0..400).map(|i| row((i % 10) as u8)).collect::<Vec<_>>();
        text[0] = text[0].replacen("1,", "17,", 1);
        let err = Digits::parse(Path::new("d"), text.join("\n").as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Parse {
                    line: 1,
                    column: 2,
                    ..
                }
            ),
            "{err}"
        );

        let mut text = (0..400).map(|i| row((i % 10) as u8)).collect::<Vec<_>>();
        text[3] = row(10);
        let err = Digits::parse(Path::new("d"), text.join("\n").as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Parse {
                    line: 4,
                    column: 65,
                    ..
                }
            ),
            "{err}"
        );

        let mut text = (0..400).map(|i| row((i % 10) as u8)).collect::<Vec<_>>();
        text[9] = "1,2,3".into();
        let err = Digits::parse(Path::new("d"), text.join("\n").as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Parse {
                    line: 10,
                    column: 3,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn last_rows_are_the_eval_split() {
        let text = (0..400)
            .map(|i| row((i % 10) as u8))
            .collect::<Vec<_>>()
            .join("\n");
        let d = Digits::parse(Path::new("d"), text.as_bytes()).unwrap();
        assert_eq!((d.train_len(), d.eval_len()), (40, 360));
        let b = d.eval_batch(&[0]).unwrap();
        assert_eq!(b.targets[[0]], 0); // row 40 has label 40 % 10
        assert_eq!(b.inputs.shape(), &[1, 64]);
        assert_eq!(b.inputs[[0, 16]], 16.0 / 16.0);
    }
}
