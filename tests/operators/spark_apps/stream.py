"""A Structured Streaming job: the rate source to Parquet in OUT; each progress appends a line to PROGRESS."""

import sys

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQueryListener

out, progress = sys.argv[1], sys.argv[2]


class Progress(StreamingQueryListener):
    def onQueryStarted(self, event):
        pass

    def onQueryProgress(self, event):
        with open(progress, "a") as f:
            f.write(f"batch {event.progress.batchId}\n")

    def onQueryIdle(self, event):
        pass

    def onQueryTerminated(self, event):
        pass


spark = SparkSession.builder.appName("stream").getOrCreate()
spark.streams.addListener(Progress())
query = (
    spark.readStream.format("rate")
    .option("rowsPerSecond", 5)
    .load()
    .writeStream.format("parquet")
    .option("path", out + "/data")
    .option("checkpointLocation", out + "/checkpoint")
    .trigger(processingTime="1 second")
    .start()
)
query.awaitTermination()
