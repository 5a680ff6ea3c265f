//! How the layout of a product's operands changes `gemm`'s speed, on the products of an MLP 784-1024-1024-1024-10
//! step at batch 128 (one thread): each product as given and flipped (`cᵀ = bᵀ·aᵀ`, which `gemm` does itself),
//! then the forward product `x · Wᵀ` with its output and input column-major, with and without the copies that take
//! them there. The measurements behind `models::matmul`'s column-major path and `transpose`.
//!
//! `taskset -c 0 cargo run --release -p models --example gemm_layouts` (`TB=N` sets the scalar transposes' tile).

use ndarray::Array2;
use std::time::Instant;

fn time<F: FnMut()>(mut f: F) -> f64 {
    for _ in 0..5 {
        f();
    }
    let mut v: Vec<f64> = (0..30)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// c = a·b via gemm, optionally as cᵀ = bᵀ·aᵀ.
fn g(
    c: &mut ndarray::ArrayViewMut2<f32>,
    a: ndarray::ArrayView2<f32>,
    b: ndarray::ArrayView2<f32>,
    flip: bool,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    unsafe {
        if !flip {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                c_cs,
                c_rs,
                false,
                a.as_ptr(),
                a_cs,
                a_rs,
                b.as_ptr(),
                b_cs,
                b_rs,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        } else {
            gemm::gemm(
                n,
                m,
                k,
                c.as_mut_ptr(),
                c_rs,
                c_cs,
                false,
                b.as_ptr(),
                b_rs,
                b_cs,
                a.as_ptr(),
                a_rs,
                a_cs,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let b: usize = std::env::var("TB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    for i0 in (0..rows).step_by(b) {
        for j0 in (0..cols).step_by(b) {
            for i in i0..(i0 + b).min(rows) {
                for j in j0..(j0 + b).min(cols) {
                    dst[j * rows + i] = src[i * cols + j];
                }
            }
        }
    }
}

fn transpose_w(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let b: usize = std::env::var("TB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    for j0 in (0..cols).step_by(b) {
        for i0 in (0..rows).step_by(b) {
            for j in j0..(j0 + b).min(cols) {
                for i in i0..(i0 + b).min(rows) {
                    dst[j * rows + i] = src[i * cols + j];
                }
            }
        }
    }
}

fn main() {
    let fill = |r: usize, c: usize| {
        Array2::from_shape_fn((r, c), |(i, j)| ((i * 7 + j * 13) % 17) as f32 * 0.01)
    };
    let mut tot = [0.0; 2];
    for (i, o) in [
        (784usize, 1024usize),
        (1024, 1024),
        (1024, 1024),
        (1024, 10),
    ] {
        let x = fill(128, i);
        let w = fill(o, i);
        let dy = fill(128, o);
        let mut y = Array2::<f32>::zeros((128, o));
        let mut dw = Array2::<f32>::zeros((o, i));
        let mut dx = Array2::<f32>::zeros((128, i));
        for flip in [false, true] {
            let f = time(|| g(&mut y.view_mut(), x.view(), w.t(), flip));
            let wg = time(|| g(&mut dw.view_mut(), dy.t(), x.view(), flip));
            let ig = time(|| g(&mut dx.view_mut(), dy.view(), w.view(), flip));
            let flops = 2.0 * 128.0 * (i * o) as f64;
            println!("{i}x{o} flip={flip}: fwd {f:.3} ms ({:.0} GF/s)  wgrad {wg:.3} ({:.0})  igrad {ig:.3} ({:.0})", flops / f / 1e6, flops / wg / 1e6, flops / ig / 1e6);
            tot[flip as usize] += f + wg + if i != 784 { ig } else { 0.0 };
        }
    }
    println!("total straight {:.3} flipped {:.3}", tot[0], tot[1]);
    for (i, o) in [(784usize, 1024usize), (1024, 1024), (1024, 10)] {
        let x = fill(128, i);
        let w = fill(o, i);
        let mut y = Array2::<f32>::zeros((128, o));
        let base = time(|| g(&mut y.view_mut(), x.view(), w.t(), false));
        let xcm = time(|| {
            let xt = x.t().as_standard_layout().into_owned();
            g(&mut y.view_mut(), xt.t(), w.t(), false)
        });
        let wtc = time(|| {
            let wt = w.t().as_standard_layout().into_owned();
            g(&mut y.view_mut(), x.view(), wt.view(), false)
        });
        let mut yt = Array2::<f32>::zeros((o, 128));
        let ytv = time(|| g(&mut yt.view_mut().reversed_axes(), x.view(), w.t(), false));
        let xt = x.t().as_standard_layout().into_owned();
        let wt = w.t().as_standard_layout().into_owned();
        let xcm0 = time(|| g(&mut y.view_mut(), xt.t(), w.t(), false));
        let wtc0 = time(|| g(&mut y.view_mut(), x.view(), wt.view(), false));
        let ytc = time(|| {
            g(&mut yt.view_mut().reversed_axes(), x.view(), w.t(), false);
            y.assign(&yt.t());
        });
        println!("  y col-major + copy to row-major {ytc:.3}");
        let both = time(|| g(&mut yt.view_mut().reversed_axes(), xt.t(), w.t(), false));
        let both_copy = time(|| {
            let xt = x.t().as_standard_layout().into_owned();
            g(&mut yt.view_mut().reversed_axes(), xt.t(), w.t(), false)
        });
        println!("  y col-major, x col-major {both:.3} (with x copy {both_copy:.3})");
        let mut xt2 = Array2::<f32>::zeros((i, 128));
        let tr = time(|| transpose(x.as_slice().unwrap(), 128, i, xt2.as_slice_mut().unwrap()));
        let full = time(|| {
            transpose(x.as_slice().unwrap(), 128, i, xt2.as_slice_mut().unwrap());
            g(&mut yt.view_mut().reversed_axes(), xt2.t(), w.t(), false);
            transpose(yt.as_slice().unwrap(), o, 128, y.as_slice_mut().unwrap());
        });
        let try_ = time(|| transpose(yt.as_slice().unwrap(), o, 128, y.as_slice_mut().unwrap()));
        let try2 = time(|| transpose_w(yt.as_slice().unwrap(), o, 128, y.as_slice_mut().unwrap()));
        let trx2 = time(|| transpose_w(x.as_slice().unwrap(), 128, i, xt2.as_slice_mut().unwrap()));
        println!("  blocked transpose of y {try_:.3} / write-contiguous {try2:.3}; x write-contiguous {trx2:.3}");
        println!("  blocked transpose of x {tr:.3}; x and y through blocked transposes, all in {full:.3}");
        println!("fwd {i}x{o}: base {base:.3}  x col-major (with copy) {xcm:.3} (no copy {xcm0:.3})  Wt copy {wtc:.3} (no copy {wtc0:.3})  y col-major {ytv:.3}");
    }
    let a = fill(1024, 1024);
    let b = fill(1024, 1024);
    let mut c = Array2::<f32>::zeros((1024, 1024));
    let t = time(|| g(&mut c.view_mut(), a.view(), b.view(), false));
    println!("1024^3 {t:.3} ms {:.0} GF/s", 2e9 * 1.073741824 / t / 1e6);
}
