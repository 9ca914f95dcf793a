"""What a trained model is used for: imputation, evaluation, ..."""
