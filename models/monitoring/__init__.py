"""Monitoring of the scoring job: drift between the model's training rows and a scoring table
(`drift`), realised performance of past scores once their labels have matured (`performance`),
and the score history they read (`history`)."""
