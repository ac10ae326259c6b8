"""Small torch heads (softmax regression, one-hidden-layer MLP) trained on feature matrices.

Standardising the features first lets one learning rate work across backbones whose
embedding scales differ by orders of magnitude.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from transferkit.heads.base import ArrayHead


class _TorchHead(ArrayHead):
    """Shared training loop: AdamW, cosine schedule, label smoothing, optional validation."""

    def _build(self, n_in: int, n_out: int) -> nn.Module:
        raise NotImplementedError

    def _fit(self, X: np.ndarray, y: np.ndarray, X_val: Any = None, y_val: Any = None) -> None:
        # Tiny matrices: one thread avoids OpenMP spin-waits that make 2 threads ~10x slower
        # on a busy 2-core machine.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            self._train(X, y, X_val, y_val)
        finally:
            torch.set_num_threads(threads)

    def _train(self, X: np.ndarray, y: np.ndarray, X_val: Any, y_val: Any) -> None:
        torch.manual_seed(self.random_state)
        self.mean_ = X.mean(axis=0).astype(np.float32)
        self.scale_ = (X.std(axis=0) + 1e-6).astype(np.float32)
        xt = torch.from_numpy((X - self.mean_) / self.scale_)
        yt = torch.from_numpy(y)
        module = self._build(X.shape[1], len(self.classes_))
        opt = torch.optim.AdamW(module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps_per_epoch = max(1, int(np.ceil(len(X) / self.batch_size)))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs * steps_per_epoch)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=self.label_smoothing)
        gen = torch.Generator().manual_seed(self.random_state)
        val = None
        if X_val is not None and y_val is not None and len(y_val):
            val = (torch.from_numpy((np.asarray(X_val, np.float32) - self.mean_) / self.scale_),
                   np.asarray(y_val))
        self.history_: list[dict[str, float]] = []
        for epoch in range(self.epochs):
            module.train()
            order = torch.randperm(len(xt), generator=gen)
            total, correct = 0.0, 0
            for start in range(0, len(xt), self.batch_size):
                idx = order[start:start + self.batch_size]
                logits = module(xt[idx])
                loss = loss_fn(logits, yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
                correct += int((logits.argmax(1) == yt[idx]).sum())
            row = {"epoch": epoch + 1, "train_loss": total / len(xt),
                   "train_accuracy": correct / len(xt)}
            if val is not None:
                module.eval()
                with torch.no_grad():
                    pred = self.classes_[module(val[0]).argmax(1).numpy()]
                row["val_accuracy"] = float((pred == val[1]).mean())
            self.history_.append(row)
        module.eval()
        self.module_ = module

    def decision_function(self, X: Any) -> np.ndarray:
        X = self._check_input(X)
        with torch.no_grad():
            return self.module_(torch.from_numpy((X - self.mean_) / self.scale_)).numpy()

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"module.{k}": v.detach().numpy() for k, v in self.module_.state_dict().items()}
        arrays.update(mean=self.mean_, scale=self.scale_)
        meta = {**self._base_meta(), "params": self.get_params(),
                "history": getattr(self, "history_", [])}
        return arrays, meta

    def _set_arrays(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self._restore_base(meta)
        self.mean_, self.scale_ = arrays["mean"], arrays["scale"]
        module = self._build(self.n_features_in_, len(self.classes_))
        module.load_state_dict({k[len("module."):]: torch.from_numpy(np.array(v))
                                for k, v in arrays.items() if k.startswith("module.")})
        self.module_ = module.eval()
        self.history_ = meta.get("history", [])


class LinearHead(_TorchHead):
    """Softmax regression on standardised features: the classic linear probe."""

    kind = "linear"

    def __init__(self, epochs: int = 60, lr: float = 1e-2, weight_decay: float = 1e-3,
                 batch_size: int = 128, label_smoothing: float = 0.0,
                 random_state: int = 0) -> None:
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.label_smoothing = label_smoothing
        self.random_state = random_state

    def _build(self, n_in: int, n_out: int) -> nn.Module:
        return nn.Sequential(nn.Linear(n_in, n_out))

    @classmethod
    def from_linear(cls, layer: nn.Linear, classes: list, **params: Any) -> LinearHead:
        """Wrap an already-trained ``nn.Linear`` on raw features (e.g. a fine-tuned head)."""
        head = cls(**params)
        head.classes_ = np.asarray(classes)
        head.n_features_in_ = layer.in_features
        head.mean_ = np.zeros(layer.in_features, np.float32)
        head.scale_ = np.ones(layer.in_features, np.float32)
        module = head._build(layer.in_features, layer.out_features)
        module[0].load_state_dict(layer.state_dict())
        head.module_ = module.eval()
        head.history_ = []
        return head


class MLPHead(_TorchHead):
    """One hidden ReLU layer with dropout: a little capacity beyond linear, still seconds."""

    kind = "mlp"

    def __init__(self, hidden: int = 512, dropout: float = 0.3, epochs: int = 60,
                 lr: float = 1e-3, weight_decay: float = 1e-2, batch_size: int = 128,
                 label_smoothing: float = 0.1, random_state: int = 0) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.label_smoothing = label_smoothing
        self.random_state = random_state

    def _build(self, n_in: int, n_out: int) -> nn.Module:
        return nn.Sequential(nn.Dropout(self.dropout / 2), nn.Linear(n_in, self.hidden),
                             nn.ReLU(), nn.Dropout(self.dropout), nn.Linear(self.hidden, n_out))
