//! Which vocabulary a run's token ids mean, checked where weights are read back: a resume ([`super::resume`]) and an
//! evaluation ([`super::evaluate`]). The vocabulary itself is the data set's tokenizer (`data::Tokenizer`), kept in
//! the run folder as `tokenizer.json` and recorded as its sha256 in each checkpoint's training state.

use crate::error::RunError;
use data::Dataset;
use std::path::Path;

/// Refuses weights trained on vocabulary `recorded` (a sha256 of the tokenizer's saved form, `None` for data
/// without one or checkpoints from before it was recorded) where `ds` now tokenizes otherwise.
pub(crate) fn check(out: &Path, recorded: Option<&str>, ds: &dyn Dataset) -> Result<(), RunError> {
    let now = ds.tokenizer().map(data::Tokenizer::sha256);
    match (recorded, now.as_deref()) {
        (Some(then), Some(now)) if then != now => Err(RunError::Mismatch(format!(
            "{}: the checkpoint was trained on the vocabulary with sha256 {then} (the run's tokenizer.json), \
             but the corpus now gives {now}: the text file or its tokenizer settings changed, so every token \
             id would mean something else",
            out.display()
        ))),
        _ => Ok(()),
    }
}
