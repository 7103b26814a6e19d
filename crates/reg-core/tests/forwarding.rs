//! A layer keeps everything it has when boxed or put in a `Sequential`: parameters, buffers, its
//! own `backward_params_only`; and `Sequential`'s own small accessors.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, array};
use reg_core::{Error, Layer, LayerExt, Mode, Param, Result, Sequential};

/// `y = x + b` with a learnable bias row `b` and a buffer counting forwards (as BatchNorm keeps
/// running statistics). Its `backward_params_only` writes the bias gradient and records that
/// the input gradient was skipped.
struct Shift {
    bias: Param<f64>,
    forwards: Array2<f64>,
    name: &'static str,
    params_only_calls: usize,
}

impl Shift {
    fn new(name: &'static str, bias: f64) -> Self {
        Self {
            bias: Param::no_decay("b", array![[bias, -bias]]),
            forwards: Array2::zeros((1, 1)),
            name,
            params_only_calls: 0,
        }
    }
}

impl Layer<f64> for Shift {
    fn forward_dyn(&mut self, input: ArrayViewD<'_, f64>, _mode: Mode) -> Result<ArrayD<f64>> {
        self.forwards[(0, 0)] += 1.0;
        Ok(&input + &self.bias.value())
    }
    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
        let g: Array2<f64> = reg_core::into_rank(grad_output.to_owned(), "Shift grad")?;
        self.bias.grad2_mut().assign(&g.sum_axis(ndarray::Axis(0)));
        Ok(grad_output.to_owned())
    }
    fn backward_params_only(&mut self, grad_output: ArrayViewD<'_, f64>) -> Result<()> {
        self.params_only_calls += 1;
        self.backward_dyn(grad_output).map(drop)
    }
    fn params(&self) -> Vec<&Param<f64>> {
        vec![&self.bias]
    }
    fn params_mut(&mut self) -> Vec<&mut Param<f64>> {
        vec![&mut self.bias]
    }
    fn buffers(&self) -> Vec<(&'static str, ArrayView2<'_, f64>)> {
        vec![(self.name, self.forwards.view())]
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, ArrayViewMut2<'_, f64>)> {
        vec![(self.name, self.forwards.view_mut())]
    }
}

fn batch() -> Array2<f64> {
    array![[1.0, 2.0], [3.0, 4.0]]
}

fn buffer_values<L: Layer<f64> + ?Sized>(layer: &L) -> Vec<(&'static str, f64)> {
    layer
        .buffers()
        .into_iter()
        .map(|(name, b)| (name, b[(0, 0)]))
        .collect()
}

#[test]
fn a_boxed_layer_lists_its_buffers() {
    let mut boxed: Box<dyn Layer<f64>> = Box::new(Shift::new("count", 1.0));
    boxed.forward(batch().view(), Mode::Train).unwrap();
    assert_eq!(buffer_values(&boxed), [("count", 1.0)]);
}

#[test]
fn a_boxed_layer_restores_its_buffers() {
    let mut boxed: Box<dyn Layer<f64>> = Box::new(Shift::new("count", 1.0));
    for (_, mut buffer) in boxed.buffers_mut() {
        buffer.fill(7.0);
    }
    assert_eq!(buffer_values(&boxed), [("count", 7.0)]);
}

#[test]
fn a_boxed_layer_keeps_its_own_backward_params_only() {
    let mut inner = Shift::new("count", 1.0);
    inner.forward(batch().view(), Mode::Train).unwrap();
    let mut boxed = Box::new(inner);
    boxed
        .backward_params_only_nd(array![[1.0, 0.5], [2.0, 0.25]].view())
        .unwrap();
    assert_eq!(boxed.params_only_calls, 1);
    assert_eq!(boxed.params()[0].grad2(), array![[3.0, 0.75]]);
}

#[test]
fn a_boxed_layer_lists_its_params_writable() {
    let mut boxed: Box<dyn Layer<f64>> = Box::new(Shift::new("count", 1.0));
    boxed.params_mut()[0].value_mut().fill(5.0);
    assert_eq!(boxed.params()[0].value2(), array![[5.0, 5.0]]);
}

#[test]
fn sequential_lists_every_layers_buffers_in_order() {
    let mut net = Sequential::new()
        .with(Shift::new("first", 1.0))
        .with(Shift::new("second", 2.0));
    net.forward(batch().view(), Mode::Train).unwrap();
    for (i, (_, mut buffer)) in net.buffers_mut().into_iter().enumerate() {
        buffer[(0, 0)] += 10.0 * (i + 1) as f64;
    }
    assert_eq!(buffer_values(&net), [("first", 11.0), ("second", 21.0)]);
}

#[test]
fn sequential_uses_the_first_layers_backward_params_only_and_backward_for_the_rest() {
    let mut net = Sequential::new()
        .with(Shift::new("first", 1.0))
        .with(Shift::new("second", 2.0));
    net.forward(batch().view(), Mode::Train).unwrap();
    net.backward_params_only_nd(array![[1.0, 2.0], [3.0, 4.0]].view())
        .unwrap();
    for p in net.params() {
        assert_eq!(p.grad2(), array![[4.0, 6.0]]);
    }
}

#[test]
fn an_empty_sequential_is_the_identity_both_ways() {
    let mut net = Sequential::<f64>::new();
    assert!(net.is_empty());
    assert_eq!(net.len(), 0);
    let y = net.forward(batch().view(), Mode::Train).unwrap();
    assert_eq!(y, batch());
    let g = array![[0.5, -1.0], [2.0, 3.0]];
    assert_eq!(net.backward(g.view()).unwrap(), g);
    net.backward_params_only_nd(g.view()).unwrap();
    assert!(Sequential::<f64>::default().is_empty());
}

#[test]
fn a_layer_pushed_onto_a_sequential_is_its_last() {
    let mut net = Sequential::new().with(Shift::new("first", 1.0));
    net.push(Box::new(Shift::new("second", 10.0)));
    assert_eq!(net.len(), 2);
    assert!(!net.is_empty());
    assert_eq!(net.layers().len(), 2);
    let y = net.forward(batch().view(), Mode::Eval).unwrap();
    assert_eq!(y, array![[12.0, -9.0], [14.0, -7.0]]);
    assert_eq!(format!("{net:?}"), "Sequential { layers: 2 }");
}

#[test]
fn a_sequentials_layers_are_writable_in_place() {
    let mut net = Sequential::new()
        .with(Shift::new("first", 1.0))
        .with(Shift::new("second", 2.0));
    net.layers_mut()[1].params_mut()[0].value_mut().fill(0.0);
    let y = net.forward(batch().view(), Mode::Eval).unwrap();
    assert_eq!(y, array![[2.0, 1.0], [4.0, 3.0]]);
}

/// A layer with nothing to learn and nothing to save, relying on the trait's defaults.
struct Identity;

impl Layer<f64> for Identity {
    fn forward_dyn(&mut self, input: ArrayViewD<'_, f64>, _mode: Mode) -> Result<ArrayD<f64>> {
        Ok(input.to_owned())
    }
    fn backward_dyn(&mut self, _grad_output: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
        Err(Error::BackwardBeforeForward { layer: "Identity" })
    }
}

#[test]
fn the_default_backward_params_only_runs_backward() {
    let mut layer = Identity;
    assert!(matches!(
        layer.backward_params_only_nd(batch().view()),
        Err(Error::BackwardBeforeForward { layer: "Identity" })
    ));
}
