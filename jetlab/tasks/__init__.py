"""jetlab.tasks"""
