"""Every shipped gin file parses, and every experiment builds its model."""
import gin
import pytest
import tensorflow as tf

from pm_zoo import configs
from pm_zoo import experiment
from pm_zoo import matching
from pm_zoo.tasks import evaluation
from pm_zoo.training import trainer

SHIPPED = configs.shipped_gin_files()
EXPERIMENTS = [f for f in SHIPPED if not f.startswith(('models/', 'training/'))]


def test_the_experiment_files_are_all_there():
  for name in ('demo.gin', 'mnist.gin', 'uci_power.gin', 'uci_gas.gin',
               'uci_hepmass.gin', 'uci_miniboone.gin', 'uci_bsds.gin',
               'table.gin', 'tiny/table.gin', 'tiny/image.gin',
               'vqvae_mnist.gin', 'vqvae_mnist_partial.gin',
               'vqvae_omniglot.gin', 'vqvae_omniglot_partial.gin',
               'tiny/vqvae.gin', 'tiny/vqvae_partial.gin'):
    assert name in SHIPPED


def _feature_shape():
  options = experiment.dataset()
  if options['source'] in ('table', 'uci'):
    return (6,)
  size = options['image_size'] or 28
  return (8, 8, 1) if options['source'] == 'sklearn_digits' else (
      size, size, 1)


@pytest.mark.parametrize('name', SHIPPED)
def test_gin_file_parses(name):
  configs.parse([name])
  assert gin.config_str()  # it bound something


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_experiment_builds_its_model(name):
  configs.parse([name])
  cfg = trainer.TrainConfig()
  assert cfg.num_steps > 0 and cfg.batch_size > 0
  assert cfg.train_mask is not None
  evaluation.EvalConfig()
  shape = _feature_shape()
  model = matching.PosteriorMatchingVAE(shape)
  x = tf.zeros([2, *shape])
  model(x, tf.ones_like(x))
  assert model.count_params() > 0


def test_vade_mlp_experiments_carry_the_vade_papers_networks():
  for name in ('vade_mnist_mlp_pretrain.gin', 'vade_mnist_mlp.gin',
               'vade_mnist_mlp_partial.gin'):
    configs.parse([name])
    model = matching.PosteriorMatchingVAE((28, 28, 1))
    x = tf.zeros([2, 28, 28, 1])
    model(x, tf.ones_like(x))
    widths = lambda net: [d.units for d in net.hidden]
    assert widths(model.vae.encoder_network) == [500, 500, 2000]
    assert widths(model.vae.decoder_network) == [2000, 500, 500]
    assert model.vae.latent_dim == 10 and model.vae.num_clusters == 10
  # The dense partial stage: the encoder's trunk over concat(x * b, b).
  configs.parse(['vade_mnist_mlp_partial_dense.gin'])
  model = matching.PosteriorMatchingVAE((28, 28, 1))
  x = tf.zeros([2, 28, 28, 1])
  model(x, tf.ones_like(x))
  trunk = model.partial_encoder.network
  assert [d.units for d in trunk.hidden] == [500, 500, 2000]
  assert trunk.hidden[0].kernel.shape[0] == 2 * 28 * 28
  assert type(model.partial_encoder.head).__name__ == (
      'AutoregressiveGaussianMixture')
  assert trainer.TrainConfig().objective == 'partial'


def test_uci_experiments_carry_the_papers_hyperparameters():
  configs.parse(['uci_miniboone.gin'])
  cfg = trainer.TrainConfig()
  assert (cfg.num_steps, cfg.batch_size) == (200000, 512)
  assert gin.query_parameter('GaussianVAE.latent_dim') == 32
  assert gin.query_parameter('ResidualMLP.num_blocks') == 5
  assert gin.query_parameter('ResidualMLP.layer_norm')
  assert gin.query_parameter('ResidualMLP.dropout') == 0.5
  assert gin.query_parameter('PosteriorMatchingVAE.stop_gradient')
  configs.parse(['uci_bsds.gin'])
  assert gin.query_parameter('GaussianVAE.latent_dim') == 64
  configs.parse(['uci_gas.gin'])
  assert gin.query_parameter('GaussianVAE.latent_dim') == 16
  assert gin.query_parameter('ResidualMLP.units') == 256
  assert gin.query_parameter('ResidualMLP.num_blocks') == 2


def test_mnist_experiment_carries_the_papers_model():
  configs.parse(['mnist.gin'])
  assert gin.query_parameter('GaussianVAE.latent_dim') == 32
  assert tuple(gin.query_parameter('ConvEncoder.layers')) == (
      (32, 5, 1), (32, 5, 2), (64, 5, 1), (64, 5, 2), (128, 7, 1))
  cfg = trainer.TrainConfig()
  assert (cfg.num_steps, cfg.batch_size) == (80000, 256)
  assert not gin.query_parameter('PosteriorMatchingVAE.stop_gradient')


@pytest.mark.parametrize('name', [f for f in EXPERIMENTS
                                  if f.startswith('uci_')])
def test_uci_experiments_use_the_autoregressive_mixture_posterior(name):
  """The paper's intended q_theta: AR mixture, 10 components per dimension."""
  configs.parse([name])
  model = matching.PosteriorMatchingVAE((6,))
  head = model.partial_encoder.head
  assert type(head).__name__ == 'AutoregressiveGaussianMixture'
  assert head.num_components == 10
  x = tf.zeros([2, 6])
  posterior = model.partial_encoder(x, tf.ones_like(x))
  latent_dim = gin.query_parameter('GaussianVAE.latent_dim')
  assert posterior.sample(seed=(1, 2)).shape == (2, latent_dim)


def test_vqvae_experiments_carry_the_papers_sizes():
  configs.parse(['vqvae_mnist.gin'])
  assert (gin.query_parameter('VQVAE.num_codes'),
          gin.query_parameter('VQVAE.embedding_dim'),
          gin.query_parameter('VQVAE.hidden'),
          gin.query_parameter('VQVAE.num_residual_blocks'),
          tuple(gin.query_parameter('VQVAE.grid_shape'))) == (
              256, 64, 32, 2, (7, 7))
  assert (gin.query_parameter('ConditionalPixelCNN.filters'),
          gin.query_parameter('ConditionalPixelCNN.num_blocks'),
          gin.query_parameter('ConditionalPixelCNN.dropout'),
          gin.query_parameter('ConditionalPixelCNN.conditioning_dim')) == (
              128, 8, 0.5, 512)
  cfg = trainer.TrainConfig()
  assert (cfg.objective, cfg.batch_size, cfg.learning_rate) == (
      'vae', 32, 3e-4)
  configs.parse(['vqvae_mnist_partial.gin'])
  assert trainer.TrainConfig().objective == 'partial'
  configs.parse(['vqvae_omniglot.gin'])
  assert experiment.dataset()['source'] == 'omniglot_npz'
  assert experiment.dataset()['image_size'] == 28


def test_a_cosine_learning_rate_ends_at_the_last_step():
  cosine = []
  for name in EXPERIMENTS:
    configs.parse([name])
    if 'cosine_decay.' in gin.config_str():
      cosine.append(name)
      assert (gin.query_parameter('cosine_decay.total_steps') ==
              trainer.TrainConfig().num_steps), name
  assert 'vqvae_mnist_partial_budget.gin' in cosine
