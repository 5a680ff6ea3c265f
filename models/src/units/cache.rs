//! What a unit's forward keeps for its backward ([`UnitCache`]), and what its backward returns ([`UnitGradients`]).

use crate::layers::block::BlockCache;
use crate::layers::layernorm::LayerNormCache;
use crate::layers::maxpool2d::MaxPoolCache;
use crate::tensor::Tensor;
use ndarray::{Array2, Array4};

/// What a unit's backward returns: the input gradient (when asked for) and the parameter gradients in
/// [`Unit::params`](crate::Unit::params) order.
pub type UnitGradients<T> = (Option<Tensor<T>>, Vec<Tensor<T>>);

/// What a unit's backward needs from its forward.
pub enum UnitCache<T> {
    Dense {
        input_shape: Vec<usize>,
        x: Array2<T>,
        act: Option<Tensor<T>>,
    },
    ConvPool {
        x: Array4<T>,
        act: Array4<T>,
        pool: MaxPoolCache,
    },
    Embed {
        ids: Array2<usize>,
    },
    Block {
        dims: (usize, usize),
        /// Boxed: a transformer block's cache is many times the size of the other variants.
        cache: Box<BlockCache<T>>,
    },
    Head {
        dims: (usize, usize),
        ln: LayerNormCache<T>,
        h: Array2<T>,
    },
}
