"""Cost of one PGD robustness evaluation relative to one training step (issue: robustness).

For the default digits run and the paper's MNIST MLP (4x200, 1,000 training samples, batch 200),
prints: one training step, one robustness evaluation (adv_samples x len(adv_eps) attacks of
adv_steps steps), their ratio, and the share of a run's wall time PGD takes at the default
cadence (``adv_points`` log-spaced evaluations over ``steps``; LC/accuracy evaluations counted too).

    python benchmarks/bench_robustness.py
"""

from __future__ import annotations

import torch

from grok_mlflow.measures.complexity import local_complexity
from grok_mlflow.measures.evaluation import accuracy_and_loss
from grok_mlflow.measures.robustness import robust_accuracy
from grok_mlflow.runner.data import load_dataset
from grok_mlflow.runner.models import build_model
from grok_mlflow.settings import Settings
from grok_mlflow.tracker.schedule import log_schedule

from common import best_time, mnist_images, stable_allocator


def case(name: str, settings: Settings, x_train, y_train, x_test, y_test, device):
    torch.manual_seed(0)
    model = build_model(settings, tuple(x_train.shape[1:]), 10).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    x_train, y_train, x_test, y_test = (t.to(device) for t in (x_train, y_train, x_test, y_test))

    def train_steps(k=50):
        for _ in range(k):
            idx = torch.randint(0, len(x_train), (settings.batch_size,), device=device)
            loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    eps = settings.adv_eps or (0.05, 0.1, 0.2)
    adv_x, adv_y = x_test[:settings.adv_samples], y_test[:settings.adv_samples]
    t_step = best_time(train_steps, 3, device) / 50
    t_pgd = best_time(lambda: robust_accuracy(model, adv_x, adv_y, eps=list(eps),
                                              steps=settings.adv_steps), 3, device)

    def evaluation():  # what every eval point costs besides PGD: accuracy/loss + LC on 3 sets
        accuracy_and_loss(model, x_train, y_train)
        accuracy_and_loss(model, x_test, y_test)
        for pts in (x_train, x_test, torch.rand_like(x_train)):
            local_complexity(model, pts[:settings.lc_samples], radius=list(settings.lc_radius),
                             n_directions=settings.lc_directions)

    t_eval = best_time(evaluation, 2, device)
    n_eval = len(log_schedule(settings.steps, settings.eval_points, settings.eval_every))
    n_adv = len(log_schedule(settings.steps, settings.adv_points))
    total = settings.steps * t_step + n_eval * t_eval + n_adv * t_pgd
    print(f"{name:<34} {device.type:<4} step {t_step * 1e3:6.2f} ms  PGD eval {t_pgd * 1e3:7.1f} ms "
          f"({len(adv_x)} samples x {len(eps)} eps x {settings.adv_steps} steps) = "
          f"{t_pgd / t_step:6.1f} steps;  over {settings.steps} steps with {n_adv} PGD and "
          f"{n_eval} LC/acc evals: PGD {100 * n_adv * t_pgd / total:4.1f}% of wall time, "
          f"LC/acc {100 * n_eval * t_eval / total:4.1f}%, training "
          f"{100 * settings.steps * t_step / total:4.1f}%")


def main():
    stable_allocator()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    digits = Settings()
    data = load_dataset(digits, torch.device("cpu"))
    mnist = mnist_images(10_000)
    for device in devices:
        case("digits default (mlp 4x200)", digits, data.x_train, data.y_train, data.x_test,
             data.y_test, device)
        if mnist is not None:
            import gzip

            import numpy as np

            from common import MNIST_T10K
            labels = torch.from_numpy(np.frombuffer(gzip.open(
                MNIST_T10K / "t10k-labels-idx1-ubyte.gz").read(), dtype=np.uint8,
                offset=8).astype(np.int64))
            # the paper's setup: 1,000 training images (here from t10k, as only it is on disk)
            mnist_settings = Settings(steps=100_000, lc_radius=(0.05,))
            case("MNIST MLP 4x200, 1k train (fig. 1)", mnist_settings, mnist[:1000], labels[:1000],
                 mnist[1000:], labels[1000:], device)


if __name__ == "__main__":
    main()
