"""The seed's CNN, layer for layer (a 2022 blog post; its description is in docs/facts.md,
"The seed benchmark").

conv 1→128 3x3 pad 1 + BN + ReLU + maxpool 2; conv 128→256 3x3 pad 1 + BN + ReLU + maxpool 2;
Dropout2d(0.5); Linear 12544→256 → 256→100 → 100→10. 3,535,446 parameters.

The seed ends in a softmax and feeds it to CrossEntropyLoss, which applies log-softmax again
(a double softmax: the gradients are damped and training is slower than it should be). The
faithful loop keeps it for comparability; the fast loops use the logits
(``softmax_output=False``), which changes no parameter.

The published description names no activation between the three linear layers, and there is
none here: with ReLU between them the faithful loop reaches 0.866 train accuracy after epoch 1
on an H200, without it 0.936, which matches the seed's published 0.938-0.940
(docs/PERFORMANCE.md, "Which model the seed trained").
"""

from __future__ import annotations

import torch
from torch import nn

SEED_PARAMETERS = 3_535_446


class SeedNet(nn.Module):
    def __init__(self, *, softmax_output: bool = True) -> None:
        super().__init__()
        self.softmax_output = softmax_output
        self.features = nn.Sequential(
            nn.Conv2d(1, 128, kernel_size=3, padding=1),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(128, 256, kernel_size=3, padding=1),
            nn.BatchNorm2d(256),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout2d(0.5),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256 * 7 * 7, 256),
            nn.Linear(256, 100),
            nn.Linear(100, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.features(x))
        return torch.softmax(logits, dim=1) if self.softmax_output else logits


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
