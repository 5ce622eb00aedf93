"""A DQN in the style of the PyTorch "Reinforcement Learning (DQN) Tutorial" (replay memory, a policy and a target network with soft updates, epsilon-greedy with exponential decay, Huber loss, AdamW with amsgrad, gradient values clipped at 100) on a tiny hand-written grid world instead of gym's CartPole.

Report: healthy, in the style of https://pytorch.org/tutorials/intermediate/reinforcement_q_learning.html
  (ReplayMemory of Transition tuples, `select_action` with EPS_END + (EPS_START - EPS_END) *
  exp(-steps_done / EPS_DECAY), `optimize_model` on a BATCH_SIZE sample with SmoothL1Loss between Q(s, a) and
  r + GAMMA * max_a' Q_target(s', a'), `torch.nn.utils.clip_grad_value_(policy_net.parameters(), 100)`, target
  updated as TAU * policy + (1 - TAU) * target after every step)
Setup: a 6x6 grid with a goal in one corner, two pits and walls at the border; the agent starts in a random
free cell, 4 actions, reward +1 at the goal, -1 in a pit (both end the episode), -0.01 a step, at most 40
steps; state one-hot over the 36 cells; DQN MLP 36-128-128-4 (the tutorial's), BATCH_SIZE 64, GAMMA 0.95,
EPS_START 0.9, EPS_END 0.05, EPS_DECAY 1000, TAU 0.005, AdamW(lr=1e-3, amsgrad=True), memory 10,000, 300
episodes; per episode `episode_return` and `episode_length`, and every 50 optimisation steps `loss` (the mean
Huber loss over those steps) and `epsilon`; every 25 episodes `greedy_success` (the greedy policy's share of
start cells that reach the goal).
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Reached: greedy_success 0.24 (episode 25) -> 0.55 -> 0.94 -> 1.00 from episode 100 on; episode_return averaged
over blocks of 50 episodes -0.15 -> 0.42 -> 0.82 -> 0.78 -> 0.92 -> 0.87 (exploration at epsilon 0.62 -> 0.13 keeps
some episodes in the pits), episode_length 14.1 -> 5.4-6.0; `loss` 0.018 at step 50, 1e-4 by step 450, then
creeping back up to 5e-4..8e-4 as the Q-values grow towards the discounted goal reward (the usual TD-loss
shape, not a failure) over 2,250 optimisation steps (checked; 3.3 min CPU, 11 min wall on a 2-core machine loaded
about 10 deep by three helpers).
"""

import math
import random
from collections import deque, namedtuple

import mlflow
import torch
import torch.nn.functional as F
from torch import nn

mlflow.autolog()
random.seed(0)
torch.manual_seed(0)

W = 6
GOAL, PITS = (0, 5), {(2, 3), (4, 1)}
MOVES = [(-1, 0), (1, 0), (0, -1), (0, 1)]
FREE = [(r, c) for r in range(W) for c in range(W) if (r, c) != GOAL and (r, c) not in PITS]


class GridWorld:
    def reset(self, start=None):
        self.pos = start if start is not None else random.choice(FREE)
        self.t = 0
        return self.obs()

    def obs(self):
        s = torch.zeros(W * W)
        s[self.pos[0] * W + self.pos[1]] = 1.0
        return s

    def step(self, a):
        dr, dc = MOVES[a]
        self.pos = (min(W - 1, max(0, self.pos[0] + dr)), min(W - 1, max(0, self.pos[1] + dc)))
        self.t += 1
        if self.pos == GOAL:
            return self.obs(), 1.0, True
        if self.pos in PITS:
            return self.obs(), -1.0, True
        return self.obs(), -0.01, self.t >= 40


Transition = namedtuple("Transition", ("state", "action", "next_state", "reward", "done"))


class ReplayMemory:
    def __init__(self, capacity):
        self.memory = deque([], maxlen=capacity)

    def push(self, *args):
        self.memory.append(Transition(*args))

    def sample(self, batch_size):
        return random.sample(self.memory, batch_size)

    def __len__(self):
        return len(self.memory)


class DQN(nn.Module):
    def __init__(self, n_observations, n_actions):
        super().__init__()
        self.layer1 = nn.Linear(n_observations, 128)
        self.layer2 = nn.Linear(128, 128)
        self.layer3 = nn.Linear(128, n_actions)

    def forward(self, x):
        x = F.relu(self.layer1(x))
        x = F.relu(self.layer2(x))
        return self.layer3(x)


BATCH_SIZE, GAMMA, EPS_START, EPS_END, EPS_DECAY, TAU, LR = 64, 0.95, 0.9, 0.05, 1000, 0.005, 1e-3
env = GridWorld()
policy_net, target_net = DQN(W * W, 4), DQN(W * W, 4)
target_net.load_state_dict(policy_net.state_dict())
optimizer = torch.optim.AdamW(policy_net.parameters(), lr=LR, amsgrad=True)
memory = ReplayMemory(10000)
steps_done = 0


def epsilon():
    return EPS_END + (EPS_START - EPS_END) * math.exp(-1.0 * steps_done / EPS_DECAY)


def select_action(state):
    global steps_done
    eps = epsilon()
    steps_done += 1
    if random.random() > eps:
        with torch.no_grad():
            return policy_net(state).argmax().item()
    return random.randrange(4)


def optimize_model():
    if len(memory) < BATCH_SIZE:
        return None
    batch = Transition(*zip(*memory.sample(BATCH_SIZE)))
    state_batch = torch.stack(batch.state)
    action_batch = torch.tensor(batch.action).unsqueeze(1)
    reward_batch = torch.tensor(batch.reward)
    next_states = torch.stack(batch.next_state)
    done = torch.tensor(batch.done, dtype=torch.float32)
    state_action_values = policy_net(state_batch).gather(1, action_batch)
    with torch.no_grad():
        next_state_values = target_net(next_states).max(1).values * (1 - done)
    expected_state_action_values = reward_batch + GAMMA * next_state_values
    loss = nn.SmoothL1Loss()(state_action_values, expected_state_action_values.unsqueeze(1))
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_value_(policy_net.parameters(), 100)
    optimizer.step()
    return loss.item()


def greedy_success():
    wins = 0
    for start in FREE:
        s, done = env.reset(start), False
        while not done:
            with torch.no_grad():
                s, r, done = env.step(policy_net(s).argmax().item())
        wins += r > 0
    return wins / len(FREE)


with mlflow.start_run():
    mlflow.log_params({"batch_size": BATCH_SIZE, "gamma": GAMMA, "eps_decay": EPS_DECAY, "tau": TAU, "lr": LR})
    losses, n_opt = [], 0
    for i_episode in range(300):
        state, done, ret, length = env.reset(), False, 0.0, 0
        while not done:
            action = select_action(state)
            next_state, reward, done = env.step(action)
            memory.push(state, action, next_state, reward, done)
            state, ret, length = next_state, ret + reward, length + 1
            loss = optimize_model()
            if loss is not None:
                losses.append(loss)
                n_opt += 1
                if n_opt % 50 == 0:
                    mlflow.log_metrics({"loss": sum(losses) / len(losses), "epsilon": epsilon()}, step=n_opt)
                    losses = []
            target_state = target_net.state_dict()
            policy_state = policy_net.state_dict()
            for key in policy_state:
                target_state[key] = policy_state[key] * TAU + target_state[key] * (1 - TAU)
            target_net.load_state_dict(target_state)
        mlflow.log_metrics({"episode_return": ret, "episode_length": length}, step=i_episode)
        if (i_episode + 1) % 25 == 0:
            success = greedy_success()
            mlflow.log_metric("greedy_success", success, step=i_episode)
            print(
                i_episode + 1, "return", round(ret, 2), "eps", round(epsilon(), 3), "greedy_success", round(success, 3)
            )
