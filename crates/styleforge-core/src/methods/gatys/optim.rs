//! Unconstrained optimisers on flat `f32` vectors: L-BFGS with a strong-Wolfe line search, and Adam.
//!
//! The objective writes its gradient into a buffer and returns the loss together with any
//! auxiliary data (`A`, for instance the loss terms), which the optimisers carry along with the
//! accepted point. Vectors are stored in `f32` (an image's worth of pixels, many times over for
//! the L-BFGS history); dot products and scalars are accumulated in `f64`.
//!
//! The L-BFGS iteration and the line search follow PyTorch's `torch.optim.LBFGS` with
//! `line_search_fn="strong_wolfe"` (itself a port of Mark Schmidt's minFunc): first step
//! `min(1, 1/‖g‖₁)`, then 1; curvature pairs kept only when `yᵀs > 1e-10`; bracketing with
//! safeguarded cubic interpolation, then zooming until the strong Wolfe conditions hold
//! (`c1 = 1e-4`, `c2 = 0.9`).

use std::collections::VecDeque;

use crate::error::Error;

/// Why an objective evaluation did not return a value.
#[derive(Debug)]
pub enum Halt {
    /// The caller asked to stop; the optimiser returns the last accepted point.
    Cancelled,
    /// The evaluation failed.
    Failed(Error),
}

impl From<Error> for Halt {
    fn from(e: Error) -> Self {
        Halt::Failed(e)
    }
}

/// What the iteration callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop now and return the current point.
    Stop,
}

/// Why an optimiser returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// The iteration limit was reached.
    MaxIterations,
    /// The evaluation limit was reached.
    MaxEvaluations,
    /// The gradient's largest component fell below the tolerance.
    Gradient,
    /// The step or the change in loss fell below the tolerance.
    Change,
    /// The search direction was not a descent direction (numerical breakdown).
    NoDescent,
    /// The callback or the objective asked to stop.
    Cancelled,
}

/// One completed iteration, as the callback sees it.
#[derive(Debug)]
pub struct Iteration<'a, A> {
    /// 0 for the starting point, then 1, 2, ...
    pub iteration: usize,
    /// Objective evaluations so far.
    pub evaluations: usize,
    /// Loss at the current point.
    pub f: f64,
    /// Auxiliary data of the current point.
    pub aux: &'a A,
    /// The current point.
    pub x: &'a [f32],
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Outcome<A> {
    /// The final point.
    pub x: Vec<f32>,
    /// Loss at the final point (for Adam: at the last evaluated point, which is the final one).
    pub f: f64,
    /// Auxiliary data at the final point.
    pub aux: A,
    /// Iterations completed.
    pub iterations: usize,
    /// Objective evaluations made.
    pub evaluations: usize,
    /// Why it stopped.
    pub termination: Termination,
}

/// L-BFGS settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LbfgsConfig {
    /// Number of curvature pairs kept.
    pub history: usize,
    /// Iteration limit.
    pub max_iterations: usize,
    /// Evaluation limit (line-search evaluations included).
    pub max_evaluations: usize,
    /// Stop when the gradient's largest component is at most this.
    pub tolerance_grad: f64,
    /// Stop when the loss or the step changes by less than this.
    pub tolerance_change: f64,
    /// Evaluations allowed per line search.
    pub max_line_search: usize,
    /// Step scale (1 is the natural quasi-Newton step).
    pub learning_rate: f64,
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        Self {
            history: 20,
            max_iterations: 100,
            max_evaluations: 125,
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            max_line_search: 25,
            learning_rate: 1.0,
        }
    }
}

/// Adam settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Step size.
    pub learning_rate: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator guard.
    pub eps: f64,
    /// Iteration limit (one evaluation each, plus one for the starting point).
    pub max_iterations: usize,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_iterations: 100,
        }
    }
}

/// The objective: loss and auxiliary data at `x`, gradient written into the buffer.
pub type ObjectiveFn<'a, A> = dyn FnMut(&[f32], &mut [f32]) -> Result<(f64, A), Halt> + 'a;
/// The per-iteration callback.
pub type CallbackFn<'a, A> = dyn FnMut(&Iteration<'_, A>) -> Control + 'a;

fn dot(a: &[f32], b: &[f32]) -> f64 {
    // Four partial sums let the compiler vectorise the f64 accumulation.
    let mut acc = [0f64; 4];
    let (ca, ra) = a.split_at(a.len() / 4 * 4);
    let (cb, rb) = b.split_at(ca.len());
    for (x, y) in ca.chunks_exact(4).zip(cb.chunks_exact(4)) {
        for k in 0..4 {
            acc[k] += x[k] as f64 * y[k] as f64;
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| *x as f64 * *y as f64).sum();
    acc.iter().sum::<f64>() + tail
}

fn max_abs(a: &[f32]) -> f64 {
    a.iter().fold(0f32, |m, v| m.max(v.abs())) as f64
}

fn l1(a: &[f32]) -> f64 {
    a.iter().map(|v| v.abs() as f64).sum()
}

/// `y += a * x`.
fn axpy(a: f64, x: &[f32], y: &mut [f32]) {
    let a = a as f32;
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Minimises with L-BFGS from `x0`.
///
/// The callback runs after the starting point is evaluated (iteration 0) and after every
/// iteration. Cancellation (from the callback or from the objective, mid line search) returns
/// the last accepted point (the starting point, with a NaN loss and default auxiliary data, when
/// the first evaluation is cancelled). Errors from the objective are returned as errors.
pub fn lbfgs<A: Clone + Default>(
    x0: Vec<f32>,
    cfg: &LbfgsConfig,
    objective: &mut ObjectiveFn<'_, A>,
    callback: &mut CallbackFn<'_, A>,
) -> Result<Outcome<A>, Error> {
    let n = x0.len();
    let (mut x, mut g, mut f, mut aux) = match evaluate_start(x0, objective)? {
        Ok(start) => start,
        Err(x0) => return Ok(cancelled_at_start(x0)),
    };
    let mut evaluations = 1;
    let mut iterations = 0;
    let finish = |x, f, aux, iterations, evaluations, termination| {
        Ok(Outcome {
            x,
            f,
            aux,
            iterations,
            evaluations,
            termination,
        })
    };
    if stops(callback, 0, evaluations, f, &aux, &x) {
        return finish(x, f, aux, 0, evaluations, Termination::Cancelled);
    }
    if max_abs(&g) <= cfg.tolerance_grad {
        return finish(x, f, aux, 0, evaluations, Termination::Gradient);
    }
    if !f.is_finite() {
        return Err(Error::Backend(format!(
            "the loss is not finite at the start ({f})"
        )));
    }

    let history = cfg.history.max(1);
    let mut s_hist: VecDeque<Vec<f32>> = VecDeque::with_capacity(history);
    let mut y_hist: VecDeque<Vec<f32>> = VecDeque::with_capacity(history);
    let mut rho: VecDeque<f64> = VecDeque::with_capacity(history);
    let mut alpha = vec![0f64; history];
    let mut d = vec![0f32; n];
    let mut prev_g = vec![0f32; n];
    let mut t = 0f64;

    let termination = loop {
        if iterations >= cfg.max_iterations {
            break Termination::MaxIterations;
        }
        if iterations == 0 {
            for (di, gi) in d.iter_mut().zip(&g) {
                *di = -gi;
            }
        } else {
            // y = g - prev_g, s = t * d (the step just taken).
            let (mut y, mut s) = if s_hist.len() == history {
                rho.pop_front();
                (
                    y_hist.pop_front().expect("full"),
                    s_hist.pop_front().expect("full"),
                )
            } else {
                (vec![0f32; n], vec![0f32; n])
            };
            for i in 0..n {
                y[i] = g[i] - prev_g[i];
                s[i] = (t as f32) * d[i];
            }
            let ys = dot(&y, &s);
            let mut h_diag = 1.0;
            if ys > 1e-10 {
                let yy = dot(&y, &y);
                y_hist.push_back(y);
                s_hist.push_back(s);
                rho.push_back(1.0 / ys);
                h_diag = ys / yy;
            } else if let (Some(yl), Some(sl)) = (y_hist.back(), s_hist.back()) {
                h_diag = dot(yl, sl) / dot(yl, yl);
            }
            // Two-loop recursion: d = -H g.
            for (di, gi) in d.iter_mut().zip(&g) {
                *di = -gi;
            }
            let k = s_hist.len();
            for i in (0..k).rev() {
                alpha[i] = dot(&s_hist[i], &d) * rho[i];
                axpy(-alpha[i], &y_hist[i], &mut d);
            }
            let h = h_diag as f32;
            for di in d.iter_mut() {
                *di *= h;
            }
            for i in 0..k {
                let beta = dot(&y_hist[i], &d) * rho[i];
                axpy(alpha[i] - beta, &s_hist[i], &mut d);
            }
        }
        prev_g.copy_from_slice(&g);
        let prev_f = f;
        t = if iterations == 0 {
            (1.0f64).min(1.0 / l1(&g)) * cfg.learning_rate
        } else {
            cfg.learning_rate
        };
        let gtd = dot(&g, &d);
        if gtd.is_nan() || gtd >= -cfg.tolerance_change {
            break Termination::NoDescent;
        }
        let budget = cfg
            .max_line_search
            .min(cfg.max_evaluations.saturating_sub(evaluations))
            .max(1);
        let ls = strong_wolfe(
            objective,
            &x,
            t,
            &d,
            f,
            &g,
            &aux,
            gtd,
            cfg.tolerance_change,
            budget,
        );
        let (point, used) = match ls {
            Ok(v) => v,
            Err((Halt::Failed(e), _)) => return Err(e),
            Err((Halt::Cancelled, used)) => {
                evaluations += used;
                break Termination::Cancelled;
            }
        };
        evaluations += used;
        iterations += 1;
        t = point.t;
        axpy(t, &d, &mut x);
        f = point.f;
        g = point.g;
        aux = point.aux;
        if stops(callback, iterations, evaluations, f, &aux, &x) {
            break Termination::Cancelled;
        }
        if evaluations >= cfg.max_evaluations {
            break Termination::MaxEvaluations;
        }
        if max_abs(&g) <= cfg.tolerance_grad {
            break Termination::Gradient;
        }
        if max_abs(&d) * t.abs() <= cfg.tolerance_change
            || (f - prev_f).abs() < cfg.tolerance_change
        {
            break Termination::Change;
        }
    };
    finish(x, f, aux, iterations, evaluations, termination)
}

/// The outcome of a run cancelled during its first evaluation: the starting point, loss unknown.
/// Evaluates the starting point: the point, its gradient, loss and auxiliary data, or the point
/// back (`Err`) when the objective cancelled the evaluation.
#[allow(clippy::type_complexity)]
fn evaluate_start<A>(
    x0: Vec<f32>,
    objective: &mut ObjectiveFn<'_, A>,
) -> Result<Result<(Vec<f32>, Vec<f32>, f64, A), Vec<f32>>, Error> {
    let mut g = vec![0f32; x0.len()];
    match objective(&x0, &mut g) {
        Ok((f, aux)) => Ok(Ok((x0, g, f, aux))),
        Err(Halt::Failed(e)) => Err(e),
        Err(Halt::Cancelled) => Ok(Err(x0)),
    }
}

/// Reports an iteration to the callback; whether it asks to stop.
fn stops<A>(callback: &mut CallbackFn<'_, A>, iteration: usize, evaluations: usize, f: f64, aux: &A, x: &[f32]) -> bool {
    callback(&Iteration { iteration, evaluations, f, aux, x }) == Control::Stop
}

fn cancelled_at_start<A: Default>(x: Vec<f32>) -> Outcome<A> {
    Outcome {
        x,
        f: f64::NAN,
        aux: A::default(),
        iterations: 0,
        evaluations: 0,
        termination: Termination::Cancelled,
    }
}

/// A point on the search line.
#[derive(Clone)]
struct Point<A> {
    t: f64,
    f: f64,
    g: Vec<f32>,
    gtd: f64,
    aux: A,
}

/// Minimiser of the cubic through two points with values and slopes, clamped to `bounds`
/// (by default the interval between the points).
fn cubic_interpolate(
    (x1, f1, g1): (f64, f64, f64),
    (x2, f2, g2): (f64, f64, f64),
    bounds: Option<(f64, f64)>,
) -> f64 {
    let (lo, hi) = bounds.unwrap_or(if x1 <= x2 { (x1, x2) } else { (x2, x1) });
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let d2_square = d1 * d1 - g1 * g2;
    if d2_square >= 0.0 {
        let d2 = d2_square.sqrt();
        let min_pos = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        if min_pos.is_finite() {
            return min_pos.max(lo).min(hi);
        }
    }
    (lo + hi) / 2.0
}

/// Strong-Wolfe line search along `d` from `x` (loss `f`, gradient `g`, slope `gtd < 0`),
/// starting with step `t`. Returns the accepted point and the evaluations used; on a halt,
/// the halt and the evaluations used.
#[allow(clippy::too_many_arguments)]
fn strong_wolfe<A: Clone>(
    objective: &mut ObjectiveFn<'_, A>,
    x: &[f32],
    t: f64,
    d: &[f32],
    f: f64,
    g: &[f32],
    aux: &A,
    gtd: f64,
    tolerance_change: f64,
    max_ls: usize,
) -> Result<(Point<A>, usize), (Halt, usize)> {
    const C1: f64 = 1e-4;
    const C2: f64 = 0.9;
    let n = x.len();
    let d_norm = max_abs(d);
    let mut xt = vec![0f32; n];
    let mut evals = 0usize;
    let mut eval = |t: f64, evals: &mut usize| -> Result<Point<A>, Halt> {
        let tf = t as f32;
        for i in 0..n {
            xt[i] = x[i] + tf * d[i];
        }
        let mut g_new = vec![0f32; n];
        let (f_new, aux_new) = objective(&xt, &mut g_new)?;
        *evals += 1;
        let gtd_new = dot(&g_new, d);
        Ok(Point {
            t,
            f: if f_new.is_nan() { f64::INFINITY } else { f_new },
            g: g_new,
            gtd: gtd_new,
            aux: aux_new,
        })
    };
    macro_rules! eval {
        ($t:expr) => {
            match eval($t, &mut evals) {
                Ok(p) => p,
                Err(h) => return Err((h, evals)),
            }
        };
    }
    let origin = || Point {
        t: 0.0,
        f,
        g: g.to_vec(),
        gtd,
        aux: aux.clone(),
    };

    let mut new = eval!(t);
    let mut prev = origin();
    let mut ls_iter = 0;
    let mut done = false;
    let mut bracket: Vec<Point<A>> = loop {
        if ls_iter >= max_ls {
            break vec![origin(), new];
        }
        if new.f > f + C1 * new.t * gtd || (ls_iter > 1 && new.f >= prev.f) {
            break vec![prev, new];
        }
        if new.gtd.abs() <= -C2 * gtd {
            done = true;
            break vec![new];
        }
        if new.gtd >= 0.0 {
            break vec![prev, new];
        }
        let min_step = new.t + 0.01 * (new.t - prev.t);
        let max_step = new.t * 10.0;
        let t_next = cubic_interpolate(
            (prev.t, prev.f, prev.gtd),
            (new.t, new.f, new.gtd),
            Some((min_step, max_step)),
        );
        prev = new;
        new = eval!(t_next);
        ls_iter += 1;
    };
    if bracket.len() == 1 {
        let p = bracket.pop().expect("one point");
        return Ok((p, evals));
    }

    // Zoom: shrink the bracket until the strong Wolfe conditions hold.
    let order = |b: &[Point<A>]| if b[0].f <= b[1].f { (0, 1) } else { (1, 0) };
    let (mut lo, mut hi) = order(&bracket);
    let mut insufficient = false;
    while !done && ls_iter < max_ls {
        if (bracket[1].t - bracket[0].t).abs() * d_norm < tolerance_change {
            break;
        }
        let mut t = cubic_interpolate(
            (bracket[0].t, bracket[0].f, bracket[0].gtd),
            (bracket[1].t, bracket[1].f, bracket[1].gtd),
            None,
        );
        let bmax = bracket[0].t.max(bracket[1].t);
        let bmin = bracket[0].t.min(bracket[1].t);
        let eps = 0.1 * (bmax - bmin);
        if (bmax - t).min(t - bmin) < eps {
            if insufficient || t >= bmax || t <= bmin {
                t = if (t - bmax).abs() < (t - bmin).abs() {
                    bmax - eps
                } else {
                    bmin + eps
                };
                insufficient = false;
            } else {
                insufficient = true;
            }
        } else {
            insufficient = false;
        }
        let new = eval!(t);
        ls_iter += 1;
        if new.f > f + C1 * t * gtd || new.f >= bracket[lo].f {
            bracket[hi] = new;
            (lo, hi) = order(&bracket);
        } else {
            if new.gtd.abs() <= -C2 * gtd {
                done = true;
            } else if new.gtd * (bracket[hi].t - bracket[lo].t) >= 0.0 {
                bracket.swap(lo, hi);
            }
            bracket[lo] = new;
        }
    }
    let p = bracket.swap_remove(lo);
    Ok((p, evals))
}

/// Minimises with Adam from `x0`: `max_iterations` steps, each followed by an evaluation.
///
/// The callback runs after the starting point is evaluated (iteration 0) and after each step,
/// with the loss at the new point.
pub fn adam<A: Clone + Default>(
    x0: Vec<f32>,
    cfg: &AdamConfig,
    objective: &mut ObjectiveFn<'_, A>,
    callback: &mut CallbackFn<'_, A>,
) -> Result<Outcome<A>, Error> {
    let n = x0.len();
    let (mut x, mut g, mut f, mut aux) = match evaluate_start(x0, objective)? {
        Ok(start) => start,
        Err(x0) => return Ok(cancelled_at_start(x0)),
    };
    let mut evaluations = 1;
    let mut m = vec![0f32; n];
    let mut v = vec![0f32; n];
    let mut iterations = 0;
    let mut termination = Termination::MaxIterations;
    if stops(callback, 0, evaluations, f, &aux, &x) {
        termination = Termination::Cancelled;
    }
    let (b1, b2) = (cfg.beta1 as f32, cfg.beta2 as f32);
    let mut x_prev = vec![0f32; n];
    while termination != Termination::Cancelled && iterations < cfg.max_iterations {
        let k = (iterations + 1) as i32;
        let c1 = 1.0 - cfg.beta1.powi(k);
        let c2 = 1.0 - cfg.beta2.powi(k);
        let step = (cfg.learning_rate / c1) as f32;
        let c2_sqrt = c2.sqrt() as f32;
        let eps = cfg.eps as f32;
        x_prev.copy_from_slice(&x);
        for i in 0..n {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            x[i] -= step * m[i] / (v[i].sqrt() / c2_sqrt + eps);
        }
        match objective(&x, &mut g) {
            Ok((fv, a)) => {
                f = fv;
                aux = a;
            }
            Err(Halt::Failed(e)) => return Err(e),
            Err(Halt::Cancelled) => {
                // The last evaluated point is the one before this step.
                x.copy_from_slice(&x_prev);
                termination = Termination::Cancelled;
                break;
            }
        }
        evaluations += 1;
        iterations += 1;
        if stops(callback, iterations, evaluations, f, &aux, &x) {
            termination = Termination::Cancelled;
        }
    }
    Ok(Outcome {
        x,
        f,
        aux,
        iterations,
        evaluations,
        termination,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rosenbrock in `n` dimensions (chained), minimum 0 at all ones.
    fn rosenbrock(x: &[f32], g: &mut [f32]) -> Result<(f64, ()), Halt> {
        let n = x.len();
        let mut f = 0f64;
        g.fill(0.0);
        let mut gd = vec![0f64; n];
        for i in 0..n - 1 {
            let (a, b) = (x[i] as f64, x[i + 1] as f64);
            f += 100.0 * (b - a * a).powi(2) + (1.0 - a).powi(2);
            gd[i] += -400.0 * a * (b - a * a) - 2.0 * (1.0 - a);
            gd[i + 1] += 200.0 * (b - a * a);
        }
        for (gi, v) in g.iter_mut().zip(gd) {
            *gi = v as f32;
        }
        Ok((f, ()))
    }

    fn quadratic(x: &[f32], g: &mut [f32]) -> Result<(f64, ()), Halt> {
        // f = sum_i (i+1) (x_i - i)^2 / 2
        let mut f = 0f64;
        for (i, (xi, gi)) in x.iter().zip(g.iter_mut()).enumerate() {
            let c = (i + 1) as f64;
            let r = *xi as f64 - i as f64;
            f += 0.5 * c * r * r;
            *gi = (c * r) as f32;
        }
        Ok((f, ()))
    }

    /// A callback that never stops the run.
    fn go_on(_: &Iteration<'_, ()>) -> Control {
        Control::Continue
    }

    /// Asserts that `x` is the minimum of [`quadratic`] (`x[i] = i`) within `tolerance`.
    fn assert_at_quadratic_minimum(x: &[f32], tolerance: f32) {
        for (i, v) in x.iter().enumerate() {
            assert!((v - i as f32).abs() < tolerance, "x[{i}] = {v}");
        }
    }

    #[test]
    fn lbfgs_solves_rosenbrock_2d() {
        let cfg = LbfgsConfig {
            max_iterations: 200,
            max_evaluations: 1000,
            ..Default::default()
        };
        let mut fs = Vec::new();
        let out = lbfgs(vec![-1.2, 1.0], &cfg, &mut rosenbrock, &mut |it| {
            fs.push(it.f);
            Control::Continue
        })
        .unwrap();
        assert!(
            (out.x[0] - 1.0).abs() < 1e-3 && (out.x[1] - 1.0).abs() < 1e-3,
            "{:?} after {} iterations ({:?})",
            out.x,
            out.iterations,
            out.termination
        );
        assert!(out.f < 1e-6, "f = {}", out.f);
        assert!(out.iterations < 60, "{} iterations", out.iterations);
        // The line search enforces sufficient decrease: the loss never rises.
        assert!(fs.windows(2).all(|w| w[1] <= w[0]), "{fs:?}");
    }

    #[test]
    fn lbfgs_solves_rosenbrock_10d() {
        let cfg = LbfgsConfig {
            max_iterations: 500,
            max_evaluations: 2000,
            history: 5,
            ..Default::default()
        };
        let x0: Vec<f32> = (0..10)
            .map(|i| if i % 2 == 0 { -1.2 } else { 1.0 })
            .collect();
        let out = lbfgs(x0, &cfg, &mut rosenbrock, &mut go_on).unwrap();
        assert!(out.x.iter().all(|v| (v - 1.0).abs() < 1e-2), "{:?}", out.x);
        assert!(out.f < 1e-5, "f = {}", out.f);
    }

    #[test]
    fn lbfgs_solves_an_ill_conditioned_quadratic_quickly() {
        let cfg = LbfgsConfig {
            max_iterations: 100,
            max_evaluations: 300,
            ..Default::default()
        };
        let out = lbfgs(vec![0.0; 20], &cfg, &mut quadratic, &mut go_on).unwrap();
        assert_at_quadratic_minimum(&out.x, 1e-3);
        assert!(out.iterations < 40, "{} iterations", out.iterations);
    }

    #[test]
    fn lbfgs_stops_when_asked() {
        let cfg = LbfgsConfig {
            max_iterations: 200,
            max_evaluations: 1000,
            ..Default::default()
        };
        let out = lbfgs(vec![-1.2, 1.0], &cfg, &mut rosenbrock, &mut |it| {
            if it.iteration >= 3 {
                Control::Stop
            } else {
                Control::Continue
            }
        })
        .unwrap();
        assert_eq!(out.iterations, 3);
        assert_eq!(out.termination, Termination::Cancelled);
        // Cancellation from inside the objective keeps the last accepted point.
        let mut calls = 0;
        let mut obj = |x: &[f32], g: &mut [f32]| {
            calls += 1;
            if calls > 6 {
                return Err(Halt::Cancelled);
            }
            rosenbrock(x, g)
        };
        let out = lbfgs(vec![-1.2, 1.0], &cfg, &mut obj, &mut go_on).unwrap();
        assert_eq!(out.termination, Termination::Cancelled);
        let mut g = [0f32; 2];
        let (f, _) = rosenbrock(&out.x, &mut g).unwrap();
        assert_eq!(f, out.f);
    }

    #[test]
    fn adam_descends_on_a_quadratic() {
        let cfg = AdamConfig {
            learning_rate: 0.1,
            max_iterations: 2000,
            ..Default::default()
        };
        let out = adam(vec![0.0; 5], &cfg, &mut quadratic, &mut go_on).unwrap();
        assert_at_quadratic_minimum(&out.x, 1e-2);
        assert_eq!(out.evaluations, 2001);
    }

    #[test]
    fn cubic_interpolation_finds_the_minimum_of_a_cubic() {
        // f(t) = (t - 1)^2 on [0, 3]: f(0)=1, f'(0)=-2, f(3)=4, f'(3)=4 -> minimum at 1.
        let t = cubic_interpolate((0.0, 1.0, -2.0), (3.0, 4.0, 4.0), None);
        assert!((t - 1.0).abs() < 1e-12, "{t}");
        // Bounds clamp.
        let t = cubic_interpolate((0.0, 1.0, -2.0), (3.0, 4.0, 4.0), Some((2.0, 5.0)));
        assert_eq!(t, 2.0);
    }
}
