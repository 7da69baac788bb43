"""
The seeds' task_worker_test.py (分布式进程), run unchanged against a C++ master
(examples/distributed_master_py.cpp) or the Python one (task_master.py). Adapted only where
it had to be:
  - the master's address comes from argv[1] ("host:port", default 127.0.0.1:5000);
  - `except Queue.Empty` named a module that is not imported (a NameError in the seed):
    it is queue.Empty;
  - the simulated work is time.sleep(0.01), not 1 s, so the mixed runs stay fast.
Run it with python3 -u (unbuffered) when another program reads its output.
"""
# task_worker_test.py文件
# 交互环境python task_worker_test.py
import time, sys, queue
from multiprocessing.managers import BaseManager

# 创建QueueManager
class QueueManager(BaseManager):
    pass

QueueManager.register("get_task_queue")
QueueManager.register("get_result_queue")

# 连接到服务器
server_address, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:5000").rsplit(":", 1)
print("Connect to server %s..." % server_address)
# 端口和验证码
m = QueueManager(address = (server_address, int(port)), authkey = b"Willard")
# 网络连接
m.connect()
# 获取Queue对象
task = m.get_task_queue()
result = m.get_result_queue()

# 从task队列取任务,把结果写入result队列
for i in range(10):
    try:
        n = task.get(timeout = 1)
        print("Run task %d * %d..." % (n, n))
        r = "%d * %d = %d" % (n, n, n * n)
        time.sleep(0.01)
        result.put(r)
    except queue.Empty:
        print("Task queue is empty.")

print("Worker Exit.")
