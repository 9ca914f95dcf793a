r"""pm-impute: fills the missing cells of a CSV file with a trained model.

  pm-impute --model_dir=runs/wine --input=in.csv --output=out.csv
  pm-impute --saved_model=runs/wine/export --input=in.csv --output=out.csv \
      --num_samples=20 --samples_output=samples.npy

Empty cells and NA/NaN mark missing values. The output keeps the header, the
column order and the observed cells; each missing cell gets the mean of
--num_samples imputations (row-keyed: the same --seed gives the same
imputations from pm-impute, the Python imputer and the SavedModel).
--samples_output writes all of them, float32 [rows, num_samples, columns]
(categorical columns as their integer codes, see the run's schema.json).
Text columns of a model trained on them are read and written as their
category text; --handle_unknown=missing imputes a category the model never
saw instead of refusing it.
The file is streamed in batches with progress, and the outputs appear only
when complete. An existing output is refused unless --overwrite.
"""
import sys

from absl import flags

from pm_zoo.launch import common
from pm_zoo.launch import paths

flags.DEFINE_string('model_dir', None, 'Run directory of pm-train (or of '
                    'PosteriorMatchingImputer.save).')
flags.DEFINE_string('saved_model', None, 'A pm-export SavedModel: a version '
                    'directory, or the export base (its highest version).')
flags.DEFINE_string('input', None, 'CSV file to impute.', required=True)
flags.DEFINE_string('output', None, 'Where the completed CSV goes.',
                    required=True)
flags.DEFINE_integer('num_samples', 10, 'Imputations averaged per cell.')
flags.DEFINE_integer('seed', 0, 'Seed of the imputations.')
flags.DEFINE_integer('batch_size', 1024, 'Rows per model call.')
flags.DEFINE_string('samples_output', None, 'Optional .npy for every '
                    'imputation, [rows, num_samples, columns].')
flags.DEFINE_bool('overwrite', False, 'Replace existing output files.')
flags.DEFINE_enum('handle_unknown', 'error', ['error', 'missing'],
                  'A category the model never saw: an error naming it, or '
                  'a missing cell to impute.')
FLAGS = flags.FLAGS


def _impute():
  # pylint: disable=g-import-not-at-top
  from pm_zoo.errors import UserError
  from pm_zoo.serving import impute_csv
  from pm_zoo.serving import loading
  if bool(FLAGS.model_dir) == bool(FLAGS.saved_model):
    raise UserError('pass exactly one of --model_dir (a pm-train run) and '
                    '--saved_model (a pm-export SavedModel)')
  # Cheap checks first: a refused output costs no model loading.
  impute_csv.check_outputs(FLAGS.input, FLAGS.output, FLAGS.samples_output,
                           FLAGS.overwrite)
  if FLAGS.model_dir:
    runner = loading.InProcess(loading.from_model_dir(FLAGS.model_dir)[0])
  else:
    runner = loading.SavedModelRunner(FLAGS.saved_model)
  impute_csv.impute_csv(
      runner, FLAGS.input, FLAGS.output, num_samples=FLAGS.num_samples,
      seed=FLAGS.seed, batch_size=FLAGS.batch_size,
      samples_output=FLAGS.samples_output, overwrite=FLAGS.overwrite,
      log=lambda line: print(line, file=sys.stderr),
      unknown=FLAGS.handle_unknown)


def _path_flags():
  return {
      'model_dir': (FLAGS.model_dir, paths.EXISTING_DIR),
      'saved_model': (FLAGS.saved_model, paths.EXISTING_DIR),
      'input': (FLAGS.input, paths.INPUT_FILE),
      'output': (FLAGS.output, paths.OUTPUT_FILE),
      'samples_output': (FLAGS.samples_output, paths.OUTPUT_FILE),
  }


main = common.launcher_main(_impute, path_flags=_path_flags)


def run():
  common.run_app(main, __name__)


if __name__ == '__main__':
  run()
