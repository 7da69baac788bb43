"""
实例: 有一个通过Queue通信的多进程程序在同一机器上运行,但现在处理任务的进程任务繁重,
希望把发送任务的进程和处理任务的进程发布到两台机器上;

The seeds' task_master_test.py (分布式进程), run unchanged against C++ workers
(examples/distributed_worker_py.cpp) or Python ones (task_worker.py). Adapted only where
it had to be:
  - the address comes from argv[1] ("host:port", default 127.0.0.1:5000; port 0 lets the
    system pick one) and is printed once the server listens, so workers know where to go;
  - return_result_queue returned the *task* queue (a typo in the seed: the master would
    read its own tasks back as "results"); it returns the result queue.
Run it with python3 -u (unbuffered) when another program reads its output.
"""
# task_master_test.py
# 交互环境中:python task_master_test.py
import random, time, queue, sys
from multiprocessing.managers import BaseManager

# 发送任务的队列
task_queue = queue.Queue()
# 接收结果的队列
result_queue = queue.Queue()

def return_task_queue():
    global task_queue
    return task_queue

def return_result_queue():
    global result_queue
    return result_queue

# 从BaseManager继承的QueueManager
class QueueManager(BaseManager):
    pass

if __name__ == "__main__":
    host, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:5000").rsplit(":", 1)
    # 把两个Queue注册到网络上,callable参数关联Queue对象
    QueueManager.register("get_task_queue", callable = return_task_queue)
    QueueManager.register("get_result_queue", callable = return_result_queue)
    # 绑定端口5000,设置验证码"Willard"
    manager = QueueManager(address = (host, int(port)), authkey = b"Willard")
    # 启动Queue
    manager.start()
    print("Master listening on %s:%d" % manager.address)
    # 获得通过网络访问的Queue对象
    task = manager.get_task_queue()
    result = manager.get_result_queue()
    # 放任务进去
    for i in range(10):
        n = random.randint(0, 10000)
        print("Put task %d..." % n)
        task.put(n)
    # 从result队列读取结果
    print("Try get results...")
    for i in range(10):
        r = result.get(timeout = 10)
        print("Result:%s" % r)
    # 关闭
    manager.shutdown()
    print("Master Exit.")
