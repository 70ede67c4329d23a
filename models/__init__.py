"""Training, calibration, metrics, SHAP, MLflow/registry helpers and scoring."""
