"""Inpainting side by side: baselines and Posterior Matching runs, same images and masks.

  python benchmarks/inpainting.py --data_path=mnist.npz --num_test=1000 \
    --model "vqvae=/work/runs/vqvae_mnist_s2+/work/runs/vqvae_mnist_s1" \
    --model "gaussian=/path/to/mnist_run" --output=inpainting.json \
    --figure=inpainting.png

Methods: zero fill, train-mean fill (per pixel), KNN-10 on the observed
pixels (the mean of the 10 training images nearest over the observed
pixels), and every ``--model NAME=DIR[+DIR...]`` (a pm-train run, restored
from DIR; fit seconds add up the training.json of every listed dir, e.g. a
stage-2 run and its stage-1 VQ-VAE).

For every trial t the masks are the paper's MNIST mixture drawn with the
seed EvalConfig.seed + t (as pm-eval draws them); a model's point
inpainting is the mean of ``--num_samples`` inpaintings. Columns: PSNR mean
+- std over trials; precision and recall (Sajjadi et al. 2018, F_1/8 and
F_8, on the embedding of a small classifier trained once on the training
split and cached in --classifier_dir, not Inception; for a model the mean
over its S samples, for a deterministic fill its one fill); fit seconds;
seconds to impute ``--num_test`` images (S samples each); and the latency of
one image with S samples (median of 20 calls, after a warm-up).
"""
import json
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import common
from pm_zoo import data as data_lib
from pm_zoo import masks as masks_lib
from pm_zoo import metrics as metrics_lib
from pm_zoo.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_string('data_path', None, 'mnist.npz (Keras layout).')
flags.DEFINE_string('source', 'mnist_npz', 'pm_zoo dataset source.')
flags.DEFINE_string('test_data_path', None, 'Test file for sources with one.')
flags.DEFINE_integer('image_size', None, 'Resize images (Omniglot: 28).')
flags.DEFINE_integer('num_test', 1000, 'First N test images.')
flags.DEFINE_integer('trials', 5, 'Mask draws.')
flags.DEFINE_integer('num_samples', 10, 'Inpaintings per image (models).')
flags.DEFINE_integer('seed', 20221, 'Seed of the masks (EvalConfig.seed).')
flags.DEFINE_multi_string('model', [], 'NAME=DIR[+DIR...] of a pm-train run.')
flags.DEFINE_string('classifier_dir', None, 'Cache of the embedding '
                    'classifier (default: /tmp/pm_zoo_classifier_<source>).')
flags.DEFINE_bool('precision_recall', True, 'Compute precision/recall.')
flags.DEFINE_string('output', None, 'JSON results.')
flags.DEFINE_string('figure', None, 'PNG with every method on 8 test images.')


def knn_fill(train, x, mask, k=10, chunk=250):
  """Mean of the k training images nearest to x over its observed pixels."""
  flat_t = train.reshape(len(train), -1)
  t2 = (flat_t ** 2).T
  out = []
  for i in range(0, len(x), chunk):
    fx = x[i:i + chunk].reshape(-1, flat_t.shape[1])
    fb = mask[i:i + chunk].reshape(fx.shape)
    d = (((fb * fx) ** 2).sum(1, keepdims=True) - 2 * (fb * fx) @ flat_t.T +
         fb @ t2)
    nearest = np.argpartition(d, k, axis=1)[:, :k]
    out.append(flat_t[nearest].mean(axis=1))
  fill = np.concatenate(out).reshape(x.shape)
  return mask * x + (1 - mask) * fill


def fit_seconds(dirs):
  total = 0.0
  for d in dirs:
    path = os.path.join(d, 'training.json')
    if os.path.exists(path):
      with open(path) as f:
        total += json.load(f).get('seconds', 0.0)
  return total


def model_method(spec):
  """(name, sampler(x, mask, S, seed) -> [S, N, ...], fit s, one-image fn)."""
  # pylint: disable=g-import-not-at-top
  from pm_zoo import experiment
  from pm_zoo.tasks.imputation import Imputer
  if '=' not in spec:
    raise UserError(f'--model {spec!r}: give NAME=DIR[+DIR...]')
  name, dirs = spec.split('=', 1)
  dirs = dirs.split('+')
  model, step = experiment.restore_for_eval(dirs[0])
  imputer = Imputer(model, batch_size=250)

  def sampler(x, mask, s, seed):
    return imputer.samples(x, mask, s, seed=seed)

  def one(x, mask, s):
    return imputer.samples(x, mask, s, seed=0)
  return name, sampler, fit_seconds(dirs), one, step


def save_figure(path, x, mask, fills):
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  rows = [('original', x), ('observed', x * mask + 0.5 * (1 - mask))] + fills
  fig = Figure(figsize=(len(x) * 1.1, len(rows) * 1.15))
  FigureCanvasAgg(fig)
  for r, (label, images) in enumerate(rows):
    for c in range(len(x)):
      ax = fig.add_subplot(len(rows), len(x), r * len(x) + c + 1)
      ax.imshow(np.clip(images[c, ..., 0], 0, 1), cmap='gray', vmin=0, vmax=1)
      ax.set_xticks([])
      ax.set_yticks([])
      if c == 0:
        ax.set_ylabel(label, fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=80)


def run():
  """The benchmark; returns (result dict, printed table)."""
  splits = data_lib.load_dataset(FLAGS.source, FLAGS.data_path,
                                 test_path=FLAGS.test_data_path,
                                 image_size=FLAGS.image_size)
  if splits.kind != 'image':
    raise UserError('benchmarks/inpainting.py is for images')
  train, test = splits.train, splits.test[:FLAGS.num_test]
  n, s = len(test), FLAGS.num_samples
  embed = None
  if FLAGS.precision_recall:
    from pm_zoo import embedding_classifier as ec  # pylint: disable=g-import-not-at-top
    from pm_zoo import precision_recall as pr  # pylint: disable=g-import-not-at-top
    cache = FLAGS.classifier_dir or f'/tmp/pm_zoo_classifier_{FLAGS.source}'
    classifier = ec.load_or_train(cache, train, splits.train_labels,
                                  test_images=splits.test,
                                  test_labels=splits.test_labels)
    embed = lambda images: ec.embed(classifier, images)
    reference = embed(test)
  mean_image = train.mean(axis=0, keepdims=True)
  methods = [
      ('zero fill', lambda x, b, _s, _seed: (x * b)[None], 0.0, None),
      ('train-mean fill',
       lambda x, b, _s, _seed: (b * x + (1 - b) * mean_image)[None], 0.0,
       None),
      ('KNN-10', lambda x, b, _s, _seed: knn_fill(train, x, b)[None], 0.0,
       None)]
  steps = {}
  for spec in FLAGS.model:
    name, sampler, fit, one, step = model_method(spec)
    methods.append((name, sampler, fit, one))
    steps[name] = step
  results, figure_fills = {}, []
  trial_masks = [masks_lib.make_eval_masks(masks_lib.mnist_mixture_mask(),
                                           test.shape[1:], n,
                                           seed=FLAGS.seed + trial)
                 for trial in range(FLAGS.trials)]
  for name, sampler, fit, one in methods:
    psnrs, seconds, prs = [], [], []
    sampler(test[:2], trial_masks[0][:2], s, 0)  # warm-up (tracing)
    for trial, mask in enumerate(trial_masks):
      t = time.time()
      samples = sampler(test, mask, s, FLAGS.seed + 1000 * (trial + 1))
      seconds.append(time.time() - t)
      psnrs.append(metrics_lib.psnr(test, samples.mean(axis=0)))
      if trial == 0:
        figure_fills.append((name, samples.mean(axis=0)[:8]))
        if embed is not None:
          prs.append(pr.inpainting_precision_recall(
              reference, [embed(sample) for sample in samples]))
      print(f'{name}: trial {trial + 1} psnr {psnrs[-1]:.3f} '
            f'({seconds[-1]:.1f} s)', flush=True)
    entry = {'psnr': metrics_lib.summarize_trials(psnrs),
             'fit_seconds': fit,
             'impute_seconds_per_1000': float(np.mean(seconds)) * 1000 / n}
    if prs:
      entry.update({k: v for k, v in prs[0].items()})
    if one is not None:
      x1, b1 = test[:1], mask[:1]
      one(x1, b1, s)
      times = []
      for _ in range(20):
        t = time.time()
        one(x1, b1, s)
        times.append(time.time() - t)
      entry['one_image_ms'] = 1000 * float(np.median(times))
      entry['step'] = steps[name]
    results[name] = entry
  if FLAGS.figure:
    save_figure(FLAGS.figure, test[:8], trial_masks[0][:8], figure_fills)
  header = (f'{"method":<18}{"PSNR dB":>16}{"precision":>11}{"recall":>9}'
            f'{"fit s":>9}{"s/1000 img":>12}{"1 img ms":>10}')
  lines = [f'{n} test images, {FLAGS.trials} mask trials, {s} samples per '
           'model inpainting; precision/recall on a small classifier\'s '
           'embedding (not Inception)', header]
  for name, e in results.items():
    p = e['psnr']
    lines.append(
        f'{name:<18}{p["mean"]:>9.3f} +- {p["std"]:<5.3f}'
        f'{e.get("precision", float("nan")):>10.3f}'
        f'{e.get("recall", float("nan")):>9.3f}{e["fit_seconds"]:>9.0f}'
        f'{e["impute_seconds_per_1000"]:>12.1f}'
        f'{e.get("one_image_ms", float("nan")):>10.1f}')
  result = {'num_test': n, 'trials': FLAGS.trials, 'num_samples': s,
            'embedding': 'penultimate layer of pm_zoo.embedding_classifier '
                         'trained on the training split (not Inception)',
            'methods': results, 'command': ' '.join(sys.argv)}
  return result, '\n'.join(lines)


main = common.absl_main(run, lambda: FLAGS.output)


if __name__ == '__main__':
  app.run(main)
