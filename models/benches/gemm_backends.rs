//! The GEMM choice, measured: the `gemm` crate (our `models::matmul`) against ndarray's default backend
//! (`matrixmultiply`, via `.dot`) on the products of one MLP 784-1024-1024-1024-10 training step at batch 128,
//! one thread (`BENCH_THREADS=2` for ours on two). `cargo bench -p models --bench gemm_backends` prints one JSON line per shape and a total,
//! then the forward product's layouts (why `models::matmul` takes its column-major path).

use ndarray::Array2;
use std::time::Instant;

fn time<F: FnMut()>(mut f: F) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut v: Vec<f64> = (0..20)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `BENCH_THREADS=2` runs our GEMM on two threads (matrixmultiply stays single-threaded).
    let threads: usize = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("thread pool");
    models::matmul::set_threads(threads);
    let fill = |r: usize, c: usize| {
        Array2::from_shape_fn((r, c), |(i, j)| ((i * 7 + j * 13) % 17) as f32 * 0.01)
    };
    // (m, k, n, how B is laid out): forward x·Wᵀ, input gradient dy·W, weight gradient dyᵀ·x.
    let mut shapes = Vec::new();
    for (i, o) in [(784, 1024), (1024, 1024), (1024, 1024), (1024, 10)] {
        shapes.push(("forward x·Wt", 128, i, o, true));
        shapes.push(("weight grad dyt·x", o, 128, i, false));
        if i != 784 {
            shapes.push(("input grad dy·W", 128, o, i, false));
        }
    }
    let (mut total_gemm, mut total_mm) = (0.0, 0.0);
    for (what, m, k, n, transposed_b) in shapes {
        let a = fill(m, k);
        let b_store = if transposed_b { fill(n, k) } else { fill(k, n) };
        let b = if transposed_b {
            b_store.t()
        } else {
            b_store.view()
        };
        let g = time(|| {
            std::hint::black_box(models::matmul::matmul(a.view(), b));
        });
        let d = time(|| {
            std::hint::black_box(a.dot(&b));
        });
        total_gemm += g;
        total_mm += d;
        println!("{{\"product\": \"{what}\", \"m\": {m}, \"k\": {k}, \"n\": {n}, \"gemm_ms\": {g:.3}, \"matrixmultiply_ms\": {d:.3}}}");
    }
    println!("{{\"product\": \"all of one step\", \"gemm_ms\": {total_gemm:.3}, \"matrixmultiply_ms\": {total_mm:.3}, \"ratio\": {:.2}}}", total_gemm / total_mm);
    forward_layouts(&fill);
}

/// The forward product `x · Wᵀ` (batch 128) as one `gemm` call on three layouts — as given (`x` and the output
/// row-major), the output column-major, `x` and the output column-major — against `matmul`, which takes the last
/// one through transposed copies (`matmul::dot_product_layout`).
fn forward_layouts(fill: &dyn Fn(usize, usize) -> Array2<f32>) {
    use models::matmul::{gemm_serial, matmul};
    for (i, o) in [(784, 1024), (1024, 1024)] {
        let (x, w) = (fill(128, i), fill(o, i));
        let x_cm = x.t().as_standard_layout().into_owned();
        let (mut y, mut y_cm) = (
            Array2::<f32>::zeros((128, o)),
            Array2::<f32>::zeros((o, 128)),
        );
        let given = time(|| gemm_serial(y.view_mut(), x.view(), w.t()));
        let out_cm = time(|| gemm_serial(y_cm.view_mut().reversed_axes(), x.view(), w.t()));
        let both_cm = time(|| gemm_serial(y_cm.view_mut().reversed_axes(), x_cm.t(), w.t()));
        let chosen = time(|| {
            std::hint::black_box(matmul(x.view(), w.t()));
        });
        println!("{{\"product\": \"forward x·Wt layouts\", \"m\": 128, \"k\": {i}, \"n\": {o}, \"as_given_ms\": {given:.3}, \"output_col_major_ms\": {out_cm:.3}, \"x_and_output_col_major_ms\": {both_cm:.3}, \"matmul_with_copies_ms\": {chosen:.3}}}");
    }
}
