"""The pytorch/examples actor-critic on CartPole (a shared hidden layer, an action head and a value head, one update per episode on normalised discounted returns), the cart-pole simulated by hand with the classic equations instead of gym.

Report: healthy, in the style of pytorch/examples reinforcement_learning/actor_critic.py
  https://github.com/pytorch/examples/blob/main/reinforcement_learning/actor_critic.py (Policy: Linear(4, 128)
  + ReLU, action_head Linear(128, 2) + softmax, value_head Linear(128, 1); Adam(lr=3e-2), gamma 0.99, returns
  standardised with eps, loss = sum of -log_prob * advantage + sum of smooth_l1(value, return), running_reward =
  0.05 * episode reward + 0.95 * running_reward, stop once running_reward passes the reward threshold)
Setup: CartPole-v0 dynamics (gravity 9.8, cart 1.0 kg, pole 0.1 kg, half-length 0.5, force 10 N, tau 0.02,
Euler integration, done past 12 degrees or 2.4 m, at most 200 steps, reward 1 per step, start state uniform in
+-0.05), threshold 195 (CartPole-v0's), at most 400 episodes; per episode `episode_reward`, `running_reward`
and `loss` (the episode's actor + critic loss), as the example prints them every log_interval episodes.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Reached: solved at episode 260 (running_reward 195.2); episode_reward averaged over blocks of 20 episodes
48 -> 76 -> 138 -> 181 -> 153 -> 144 -> 192 -> 181 -> 189 -> 200, running_reward 10.9 -> 113 (ep 80) -> 166
(ep 120) -> a dip to ~145 (ep 130-140) -> 180 -> 195; `loss` swings between -19 and 273 from episode to
episode (its block means 29, 22, 43, 11, 52, 19, 8, 10, 7, 3, 5, 1, 33): a policy-gradient loss on standardised
returns measures nothing that should fall (checked; 72 s CPU, 641 s wall on a 2-core machine loaded by three
helpers, OMP_NUM_THREADS=1, recorder off).
"""

import math

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical

mlflow.autolog()
torch.manual_seed(543)
rng = np.random.default_rng(543)
GAMMA, EPS, THRESHOLD, MAX_STEPS, MAX_EPISODES = 0.99, np.finfo(np.float32).eps.item(), 195.0, 200, 400


class CartPole:
    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    total_mass, polemass_length = 1.1, 0.05
    theta_threshold, x_threshold = 12 * 2 * math.pi / 360, 2.4

    def reset(self):
        self.state = rng.uniform(-0.05, 0.05, size=4)
        return self.state.copy()

    def step(self, action):
        x, x_dot, theta, theta_dot = self.state
        force = self.force_mag if action == 1 else -self.force_mag
        costheta, sintheta = math.cos(theta), math.sin(theta)
        temp = (force + self.polemass_length * theta_dot**2 * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta**2 / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        x, x_dot = x + self.tau * x_dot, x_dot + self.tau * xacc
        theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * thetaacc
        self.state = np.array([x, x_dot, theta, theta_dot])
        done = abs(x) > self.x_threshold or abs(theta) > self.theta_threshold
        return self.state.copy(), 1.0, done


class Policy(nn.Module):
    def __init__(self):
        super().__init__()
        self.affine1 = nn.Linear(4, 128)
        self.action_head = nn.Linear(128, 2)
        self.value_head = nn.Linear(128, 1)
        self.saved_actions, self.rewards = [], []

    def forward(self, x):
        x = F.relu(self.affine1(x))
        return F.softmax(self.action_head(x), dim=-1), self.value_head(x)


model = Policy()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
env = CartPole()


def select_action(state):
    probs, state_value = model(torch.from_numpy(state).float())
    m = Categorical(probs)
    action = m.sample()
    model.saved_actions.append((m.log_prob(action), state_value))
    return action.item()


def finish_episode():
    R, returns = 0.0, []
    for r in model.rewards[::-1]:
        R = r + GAMMA * R
        returns.insert(0, R)
    returns = torch.tensor(returns)
    returns = (returns - returns.mean()) / (returns.std() + EPS)
    policy_losses, value_losses = [], []
    for (log_prob, value), R in zip(model.saved_actions, returns):
        advantage = R - value.item()
        policy_losses.append(-log_prob * advantage)
        value_losses.append(F.smooth_l1_loss(value, torch.tensor([R])))
    optimizer.zero_grad()
    loss = torch.stack(policy_losses).sum() + torch.stack(value_losses).sum()
    loss.backward()
    optimizer.step()
    del model.rewards[:], model.saved_actions[:]
    return loss.item()


with mlflow.start_run():
    mlflow.log_params({"gamma": GAMMA, "lr": 3e-2, "hidden": 128, "reward_threshold": THRESHOLD})
    running_reward = 10.0
    for i_episode in range(1, MAX_EPISODES + 1):
        state, ep_reward = env.reset(), 0.0
        for _ in range(MAX_STEPS):
            state, reward, done = env.step(select_action(state))
            model.rewards.append(reward)
            ep_reward += reward
            if done:
                break
        running_reward = 0.05 * ep_reward + (1 - 0.05) * running_reward
        loss = finish_episode()
        mlflow.log_metrics(
            {"episode_reward": ep_reward, "running_reward": running_reward, "loss": loss}, step=i_episode
        )
        if i_episode % 10 == 0:
            print(f"Episode {i_episode}\tLast reward: {ep_reward:.2f}\tAverage reward: {running_reward:.2f}")
        if running_reward > THRESHOLD:
            print(
                f"Solved! Running reward is now {running_reward} and the last episode runs to {ep_reward} time steps!"
            )
            break
