//! MNIST and Fashion-MNIST from their four IDX files.
//!
//! Files (each raw or gzipped, detected by magic bytes): `train-images-idx3-ubyte`,
//! `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`. The train
//! split is the 60,000 training images, the eval split the 10,000 test images.
//!
//! Pixels stay in memory as bytes (47 MB for the train images rather than 188 MB as f32) and
//! are mapped to f32 through a 256-entry table while a batch is gathered: one pass, and every
//! pixel value maps to the same f32 bits whatever the batch.

use std::path::{Path, PathBuf};

use crate::batch::{check_indices, Batch};
use crate::config::Normalize;
use crate::dataset::{Dataset, Task};
use crate::error::{DataError, Result, Split};
use crate::idx::Idx;
use crate::read::find_raw_or_gz;

/// Number of classes in both MNIST and Fashion-MNIST.
pub const CLASSES: usize = 10;

/// File names (without `.gz`) of the train images, train labels, test images, test labels.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Which of the two byte-compatible datasets a folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MnistKind {
    /// Handwritten digits (LeCun & Cortes).
    Mnist,
    /// Zalando's clothing images in the MNIST format.
    FashionMnist,
}

impl MnistKind {
    /// The dataset name (`"mnist"` or `"fashion-mnist"`), also its folder under [`crate::data_root`].
    pub fn name(self) -> &'static str {
        match self {
            MnistKind::Mnist => "mnist",
            MnistKind::FashionMnist => "fashion-mnist",
        }
    }

    /// Mean and standard deviation of the training pixels scaled to `[0, 1]`, the constants
    /// `normalize = "standardize"` uses: MNIST (0.1307, 0.3081), the values torchvision's
    /// examples quote; Fashion-MNIST (0.2860, 0.3530).
    pub fn mean_std(self) -> (f32, f32) {
        match self {
            MnistKind::Mnist => (0.1307, 0.3081),
            MnistKind::FashionMnist => (0.2860, 0.3530),
        }
    }

    /// How to get a missing file, appended to [`DataError::MissingFile`].
    fn hint(self) -> &'static str {
        match self {
            MnistKind::Mnist => {
                "`trainer data download mnist --dir DIR` fetches the four MNIST files and checks their sha256"
            }
            MnistKind::FashionMnist => {
                "`apt-get install dataset-fashion-mnist` provides it under \
                 /usr/share/datasets/fashion-mnist (set the data dir there)"
            }
        }
    }
}

/// One split: images `[n, rows, cols]` as bytes and their labels.
#[derive(Debug)]
struct Part {
    images: Idx,
    labels: Idx,
}

impl Part {
    fn len(&self) -> usize {
        self.labels.dims()[0]
    }
}

/// MNIST or Fashion-MNIST, loaded into memory.
pub struct Mnist {
    kind: MnistKind,
    train: Part,
    test: Part,
    rows: usize,
    cols: usize,
    /// Pixel byte -> normalised f32.
    table: [f32; 256],
}

impl Mnist {
    /// Open the four IDX files in `dir` (the dataset's own folder, e.g. `shared/data/mnist`).
    ///
    /// All four files are located before any is read, so a missing one is reported (with how to
    /// get it) without first spending time decompressing the others. The train images are
    /// decompressed on a second thread while the other three are read.
    pub fn open(dir: &Path, kind: MnistKind, normalize: Normalize) -> Result<Self> {
        let paths = FILES
            .iter()
            .map(|name| find_raw_or_gz(dir, name, kind.hint()))
            .collect::<Result<Vec<PathBuf>>>()?;
        let (train_images, rest) = std::thread::scope(|s| {
            let big = s.spawn(|| Idx::read(&paths[0], 3));
            let rest = (|| -> Result<(Idx, Idx, Idx)> {
                Ok((
                    Idx::read(&paths[1], 1)?,
                    Idx::read(&paths[2], 3)?,
                    Idx::read(&paths[3], 1)?,
                ))
            })();
            let big = big
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (big, rest)
        });
        let (train_labels, test_images, test_labels) = rest?;
        let train = checked_part(train_images?, train_labels)?;
        let test = checked_part(test_images, test_labels)?;
        let (rows, cols) = (train.images.dims()[1], train.images.dims()[2]);
        if test.images.dims()[1..] != [rows, cols] {
            return Err(DataError::BadDims {
                path: test.images.path().to_path_buf(),
                dims: test.images.dims().to_vec(),
                reason: format!("test images must be {rows}x{cols} like the train images"),
            });
        }
        let (mean, std) = match normalize {
            Normalize::Unit => (0.0, 1.0),
            Normalize::Standardize => kind.mean_std(),
        };
        let table = std::array::from_fn(|p| (p as f32 / 255.0 - mean) / std);
        Ok(Mnist {
            kind,
            train,
            test,
            rows,
            cols,
            table,
        })
    }

    /// Which dataset this is.
    pub fn kind(&self) -> MnistKind {
        self.kind
    }

    /// Labels of a split, in file order.
    pub fn labels(&self, split: Split) -> &[u8] {
        self.part(split).labels.data()
    }

    /// Raw pixel bytes (0..=255) of one example of a split, `rows * cols` of them, or `None`
    /// if `index` is out of range.
    pub fn pixels(&self, split: Split, index: usize) -> Option<&[u8]> {
        let n = self.rows * self.cols;
        self.part(split)
            .images
            .data()
            .get(index * n..(index + 1) * n)
    }

    fn part(&self, split: Split) -> &Part {
        match split {
            Split::Train => &self.train,
            Split::Eval => &self.test,
        }
    }

    fn gather(&self, split: Split, indices: &[usize]) -> Result<Batch> {
        let part = self.part(split);
        check_indices(self.name(), split, indices, part.len())?;
        let n = self.rows * self.cols;
        let (pixels, labels) = (part.images.data(), part.labels.data());
        let mut inputs = Vec::with_capacity(indices.len() * n);
        let mut targets = Vec::with_capacity(indices.len());
        for &i in indices {
            inputs.extend(
                pixels[i * n..(i + 1) * n]
                    .iter()
                    .map(|&p| self.table[p as usize]),
            );
            targets.push(u32::from(labels[i]));
        }
        let b = indices.len();
        Batch::from_vecs(inputs, &[b, 1, self.rows, self.cols], targets, &[b])
    }
}

/// Check that images are `[n, rows, cols]` with non-zero sizes, labels are `[n]` with the same
/// `n`, and every label is a class id.
fn checked_part(images: Idx, labels: Idx) -> Result<Part> {
    if images.dims().contains(&0) {
        return Err(DataError::BadDims {
            path: images.path().to_path_buf(),
            dims: images.dims().to_vec(),
            reason: "images need a non-zero count, height and width".into(),
        });
    }
    let (image_count, label_count) = (images.dims()[0], labels.dims()[0]);
    if image_count != label_count {
        return Err(DataError::CountMismatch {
            images: images.path().to_path_buf(),
            image_count,
            labels: labels.path().to_path_buf(),
            label_count,
        });
    }
    if let Some((index, &label)) = labels
        .data()
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= CLASSES)
    {
        return Err(DataError::BadLabel {
            path: labels.path().to_path_buf(),
            index,
            label: u32::from(label),
            classes: CLASSES,
        });
    }
    Ok(Part { images, labels })
}

/// Shows the files and sizes, not the pixels or the lookup table.
impl std::fmt::Debug for Mnist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mnist")
            .field("kind", &self.kind)
            .field("train", &self.train)
            .field("test", &self.test)
            .finish_non_exhaustive()
    }
}

impl Dataset for Mnist {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn task(&self) -> Task {
        Task::Classification { classes: CLASSES }
    }

    fn sample_shape(&self) -> Vec<usize> {
        vec![1, self.rows, self.cols]
    }

    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn eval_len(&self) -> usize {
        self.test.len()
    }

    fn train_batch(&self, indices: &[usize]) -> Result<Batch> {
        self.gather(Split::Train, indices)
    }

    fn eval_batch(&self, indices: &[usize]) -> Result<Batch> {
        self.gather(Split::Eval, indices)
    }
}
